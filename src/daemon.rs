//! `lvsfwd --config lb.toml` / `lvsfwd --interface IF`: the load balancer in
//! the foreground.
//!
//! Start-up order: read and validate the configuration (nothing is touched
//! when it is wrong), learn the NIC from the kernel, attach lvsfwd's XDP
//! program (replacing a stale one), open one AF_XDP socket and one pinned
//! worker per RX queue, then print `lvsfwd: ready ...` on stderr and send
//! systemd `READY=1` (`control::ops::notify`). The main thread then becomes
//! the control thread: it refreshes next hops from the kernel's tables,
//! publishes them to the workers as snapshots, answers the metrics thread
//! (`[metrics] listen`) and handles signals (SIGHUP reload, SIGUSR1/SIGUSR2
//! dumps). SIGTERM / SIGINT stop cleanly: workers joined, XDP program
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

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

use crate::admin::apply::AdminState;
use crate::admin::proto::{self, ListingSource};
use crate::config::{self, Config};
use crate::conn::ConnSysctls;
use crate::control::admin_socket::AdminSocket;
use crate::control::announce::{self, Announcer};
use crate::control::estimator::{self, Estimator};
use crate::control::health::{self, Health, HealthView};
use crate::control::neigh::{self, NextHops, Nics};
use crate::control::netlink::Netlink;
use crate::control::ops::metrics::{MetricsServer, StatusRequest};
use crate::control::ops::notify::Notifier;
use crate::control::ops::ratelimit::RateLimit;
use crate::control::ops::{self, Status, dump};
use crate::control::sync::{Role, SyncDaemon};
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
    // enable_script_security: insecure MISC_CHECKs are left out.
    let checked = health::secure_checkers(
        &cfg.virtual_servers,
        run_as,
        cfg.global.enable_script_security,
    );
    let (health, health_view) = Health::start(&checked, run_as)?;
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
    let (queues, nic_queues) = served_queues(&ifnames, cfg.global.queues.as_deref())?;
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
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2])
        .context("installing signal handlers")?;

    let mut prog = Programs::attach(&ifnames, cfg.global.xdp_mode)?;
    // VRRP: no VIP is served before its instance is master.
    let vrrp_gate = VipGate::new(&cfg.vrrp_instances);
    prog.set_filter(
        &Filter::from_specs(
            &vrrp_thread::active_specs(&specs, &vrrp_gate.inactive()),
            &own_addrs,
        )
        .with_local_addrs(cfg.announce.iter().flat_map(|a| &a.peer_local_addrs)),
    )?;

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
    let nic_facts = NicFacts {
        macs: links.iter().map(|l| l.mac).collect(),
        mtu,
        // Bit i: NIC i may hand over partial checksums (virtual NICs).
        partial_csum: ifnames
            .iter()
            .enumerate()
            .filter(|(_, n)| crate::xsk::nic::may_deliver_partial_csum(n))
            .fold(0u8, |bits, (i, _)| bits | (1 << i)),
    };
    let dataplanes = (0..queues.len())
        .map(|_| {
            // The schedulers' randomness (twos) from the OS too, one draw
            // per worker.
            let sched = config::os_seed().context("drawing a seed from the OS")?;
            let mut dp =
                worker_dataplane(&cfg, &specs, &nic_facts, &own_addrs, queues.len(), seeds);
            dp.reseed_schedulers(sched);
            Ok(dp)
        })
        .collect::<Result<Vec<_>>>()?;
    let ecfg = EngineConfig {
        ifnames: ifnames.clone(),
        queues: queues.clone(),
        nic_queues,
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
    if let Some((level, note)) = engine::huge_pages_note() {
        log::log!(level, "{note}");
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
    sync.set_sysctls(cfg.global.sync);
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
    // Announce only while serving: the routes come once the loop judges.
    let announcer = match cfg.announce.as_ref().map(Announcer::start).transpose() {
        Ok(a) => a,
        Err(e) => {
            drop(admin);
            engine.stop();
            let _ = prog.detach();
            return Err(e.context("taking over the announce table"));
        }
    };
    let quorum = quorum_of(&cfg);
    // ---- VRRP: after the engine, so that a new master is served at once.
    let (vrrp_tx, vrrp_rx) = std::sync::mpsc::channel();
    let hold = sync.table_hold();
    let vrrp = match vrrp_thread::VrrpSetup::new(&cfg, run_as)
        .map(|mut setup| {
            setup.table_hold = Some(hold);
            setup
        })
        .and_then(|setup| VrrpThread::start(setup, vrrp_tx))
    {
        Ok(v) => v,
        Err(e) => {
            drop(admin);
            engine.stop();
            let _ = prog.detach();
            return Err(e);
        }
    };
    // ---- end VRRP
    // ---- metrics: only where lb.toml says, refused (and nothing left
    // running) when that address cannot be bound.
    let (status_tx, status_rx) = std::sync::mpsc::channel::<StatusRequest>();
    let metrics = match cfg.global.metrics_listen {
        None => None,
        Some(a) => match MetricsServer::start(a, status_tx) {
            Ok(m) => {
                log::info!("metrics on http://{}/metrics", m.addr());
                Some(m)
            }
            Err(e) => {
                vrrp.stop();
                drop(admin);
                engine.stop();
                let _ = prog.detach();
                return Err(e);
            }
        },
    };
    let dump_dir = dump::dump_dir(
        std::env::var("RUNTIME_DIRECTORY").ok().as_deref(),
        admin
            .path()
            .parent()
            .unwrap_or_else(|| std::path::Path::new("/run")),
    );
    let ready_line = format!(
        "{} virtual services on {} ({} queues, {} XDP), admin socket {}",
        specs.len(),
        ifnames.join(", "),
        queues.len(),
        prog.modes(),
        admin.path().display()
    );
    eprintln!("lvsfwd: ready: {ready_line}");
    // Every worker is bound, the XDP program attached and the admin socket
    // open: systemd may start what depends on us.
    let mut notifier = Notifier::from_env();
    notifier.ready(&ready_line, Instant::now());
    if let Some(p) = notifier.ping_every() {
        log::info!("systemd watchdog: pinging every {p:?}");
    }
    let started = Instant::now();

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
        vrrp_reload: vrrp.reloader(),
        checkers: checker_names(&cfg.virtual_servers),
        warnings: RateLimit::default(),
        sync: std::cell::RefCell::new(sync),
        announcer,
        quorum,
        fwmarks: cfg.fwmarks.clone(),
    };
    let mut last_announce = Instant::now()
        .checked_sub(announce::PERIOD)
        .unwrap_or_else(Instant::now);
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
                SIGHUP => {
                    notifier.reloading();
                    ctl.reload(&source);
                    notifier.reloaded(&ready_line, Instant::now());
                }
                SIGUSR1 | SIGUSR2 => {
                    let (name, doc) = {
                        let st = ctl.status(&vrrp, started);
                        if sig == SIGUSR1 {
                            (dump::DATA_FILE, dump::data(&st))
                        } else {
                            (dump::STATS_FILE, dump::stats(&st))
                        }
                    };
                    match dump::write(&dump_dir, name, &doc) {
                        Ok(p) => log::info!("dump written to {}", p.display()),
                        Err(e) => log::error!("dump: {e:#}"),
                    }
                }
                _ => {}
            }
        }
        notifier.tick(Instant::now());
        ctl.follow_health();
        loop {
            match admin.accept() {
                Ok(Some(mut stream)) => ctl.serve_admin(&mut stream),
                Ok(None) => break,
                Err(e) => {
                    ctl.warnings
                        .warn("admin", Instant::now(), || format!("admin socket: {e}"));
                    break;
                }
            }
        }
        // Scrapes: the metrics thread waits for the answer, we never wait
        // for it.
        let asks: Vec<StatusRequest> = status_rx.try_iter().collect();
        if !asks.is_empty() {
            let st = ctl.status(&vrrp, started);
            for a in asks {
                let _ = a.send(st.clone());
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
            let addrs = nic_addresses(&mut ctl.nl, &ctl.nics);
            if addrs.is_ok() && ctl.warnings.clear("addresses") {
                log::info!("{}: addresses readable again", ctl.nics.names());
            }
            match addrs {
                Ok(addrs) if *shared.load().own_addrs != addrs => {
                    log::info!("{}: addresses now {addrs:?}", ctl.nics.names());
                    let mut next = (*shared.load()).clone();
                    next.own_addrs = Arc::new(addrs);
                    shared.publish(next);
                }
                Ok(_) => {}
                Err(e) => ctl.warnings.warn("addresses", Instant::now(), || {
                    format!("reading the NICs' addresses: {e:#}")
                }),
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
                    if ctl.warnings.clear("next hops") {
                        log::info!("next hops readable again");
                    }
                    unresolved = missing;
                    if *published.neighbours != map {
                        let mut next = (*published).clone();
                        next.neighbours = Arc::new(map);
                        shared.publish(next);
                    }
                }
                Err(e) => ctl.warnings.warn("next hops", Instant::now(), || {
                    format!("refreshing next hops: {e:#}")
                }),
            }
        }
        // Also the loop's pace: returns at once when VRRP has news.
        ctl.vrrp_events(&vrrp_rx, Duration::from_millis(20));
        ctl.answer_table_request();
        ctl.sync.get_mut().poll_table_hold();
        if last_announce.elapsed() >= announce::PERIOD {
            last_announce = Instant::now();
            ctl.announce();
        }
    }
    // Withdrawn first: the router moves the flows while we still serve.
    if let Some(a) = ctl.announcer.as_mut() {
        a.withdraw_all(if died.is_some() {
            "a worker died"
        } else {
            "stopping"
        });
    }
    notifier.stopping();
    if let Some(m) = metrics {
        m.stop();
    }
    // VRRP before the engine: priority 0 goes out while we still serve.
    vrrp.stop();
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
    // Fragments: shown once there were any.
    let (consumed, reasm, frag_sent, frag_icmp) = dps.iter().fold((0, 0, 0, 0), |a, d| {
        (
            a.0 + d.counters.consumed,
            a.1 + d.counters.frag_reassembled,
            a.2 + d.counters.frag_sent + d.counters.frag_to_kernel,
            a.3 + d.counters.icmp_frag_time,
        )
    });
    let frags = if consumed > 0 {
        format!(
            " consumed {consumed} frag_reassembled {reasm} frag_sent {frag_sent} \
             icmp_frag_time {frag_icmp}"
        )
    } else {
        String::new()
    };
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
         kernel_port_drop {kport_drop} partial_csum {partial_csum} icmp_too_big {too_big}{frags}{}{})",
        if reasons.is_empty() { "" } else { ": " },
        reasons.join(", ")
    );
    Ok(())
}

/// What the data planes take from the NICs, in `interface` order.
struct NicFacts {
    macs: Vec<MacAddr>,
    /// The smallest MTU of the NICs (the tunnels' MTU check).
    mtu: u32,
    /// Bit i: NIC i may deliver partial checksums.
    partial_csum: u8,
}

/// The data plane of one worker: the whole service table, its share of the
/// connection-table capacity, the engine's hash seeds.
fn worker_dataplane(
    cfg: &Config,
    specs: &[ServiceSpec],
    nics: &NicFacts,
    own_addrs: &[IpAddr],
    workers: usize,
    hash_seeds: HashSeeds,
) -> Dataplane {
    let base = cfg.dataplane_config();
    Dataplane::new(
        DataplaneConfig {
            own_macs: nics.macs.clone(),
            own_addrs: own_addrs.to_vec(),
            mtu: nics.mtu.clamp(576, u16::MAX as u32) as u16,
            partial_csum_nics: nics.partial_csum,
            conn_max: (base.conn_max / workers).max(1024),
            hash_seeds,
            ..base
        },
        crate::service::ServiceTable::from_specs(specs),
    )
}

/// The RX queues the workers serve, one worker each, and how many RX
/// queues each NIC has: `configured` (lb.toml `queues`), each of which
/// some NIC must have and each NIC must have one of, or every queue of
/// every NIC (as many workers as the NIC with the most queues has; worker
/// i serves queue i of each NIC that has it, so RSS puts no traffic on a
/// queue no worker serves).
fn served_queues(ifnames: &[String], configured: Option<&[u32]>) -> Result<(Vec<u32>, Vec<u32>)> {
    let mut counts = Vec::with_capacity(ifnames.len());
    for n in ifnames {
        counts.push(engine::rx_queue_count(n)?);
    }
    let queues: Vec<u32> = match configured {
        Some(q) => {
            if let Some(missing) = q.iter().find(|&&q| counts.iter().all(|&c| q >= c)) {
                bail!("no data-plane NIC has RX queue {missing} to serve ([global] queues)");
            }
            for (n, &c) in ifnames.iter().zip(&counts) {
                if q.iter().all(|&q| q >= c) {
                    bail!("{n} has {c} RX queues: none of [global] queues {q:?} is one of them");
                }
            }
            q.to_vec()
        }
        None => (0..counts.iter().copied().max().unwrap_or(0)).collect(),
    };
    if queues.is_empty() {
        bail!("{}: no RX queue to serve", ifnames.join(", "));
    }
    Ok((queues, counts))
}

/// The addresses of every data-plane NIC, in NIC order.
fn nic_addresses(nl: &mut Netlink, nics: &Nics) -> Result<Vec<IpAddr>> {
    let mut all = Vec::new();
    for (ifindex, name) in &nics.0 {
        all.extend(
            nl.addresses(*ifindex)
                .with_context(|| format!("reading the addresses of {name}"))?,
        );
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

    /// Each NIC's name and attach mode (`native` / `generic`).
    fn status(&self, nics: &Nics) -> Vec<ops::XdpStatus> {
        self.0
            .iter()
            .zip(&nics.0)
            .map(|(p, (_, name))| ops::XdpStatus {
                interface: name.clone(),
                mode: format!("{:?}", p.mode()).to_lowercase(),
            })
            .collect()
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

/// A reload's `[announce]`, prepared ([`Control::prepare_announce`]).
enum AnnounceChange {
    None,
    Start(Announcer),
    Reconfig(announce::Reconfig),
    Stop,
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
    /// SIGHUP's way to the VRRP thread.
    vrrp_reload: vrrp_thread::VrrpReloader,
    /// Each real server's checker keywords (dumps and metrics).
    checkers: HashMap<(ServiceKey, std::net::SocketAddr), Vec<String>>,
    /// Warnings that would repeat at every turn while a condition lasts.
    warnings: RateLimit,
    /// Connection sync (lb.toml's `lvs_sync_daemon`, lvsadm; a cell: the
    /// admin view borrows it beside the rest).
    sync: std::cell::RefCell<SyncDaemon>,
    /// `[announce]`: the served VIPs' routes for the BGP daemon.
    announcer: Option<Announcer>,
    /// Each lb.toml virtual server's quorum (lvsadm's: 1).
    quorum: HashMap<ServiceKey, u32>,
    /// lb.toml's `[[fwmark]]` rules: given to every fwmark service of
    /// their mark, lvsadm's (`-A -f N`) included.
    fwmarks: Vec<crate::service::FwmarkRule>,
}

/// keepalived's keyword for each real server's checkers.
fn checker_names(
    vss: &[config::VirtualServer],
) -> HashMap<(ServiceKey, std::net::SocketAddr), Vec<String>> {
    let mut out = HashMap::new();
    for vs in vss {
        let key = vs.key();
        for rs in &vs.real_servers {
            let names = rs
                .checks
                .iter()
                .map(|c| c.kind.keyword().to_string())
                .collect();
            out.insert((key, rs.address), names);
        }
    }
    out
}

/// The rate estimators, per service and per real server.
#[derive(Default)]
struct RateTable {
    services: HashMap<ServiceKey, Estimator>,
    dests: HashMap<(ServiceKey, IpAddr, u16), Estimator>,
}

/// Each lb.toml virtual server's quorum.
fn quorum_of(cfg: &config::Config) -> HashMap<ServiceKey, u32> {
    cfg.virtual_servers
        .iter()
        .map(|vs| (vs.spec().key, vs.quorum))
        .collect()
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
        )
        .with_local_addrs(&self.peer_local_addrs());
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
        let mut v = health::effective_services(&self.state.services, &self.health_view);
        crate::service::attach_rules(&mut v, &self.fwmarks);
        v
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
            )
            .with_local_addrs(&self.peer_local_addrs());
            if let Err(e) = self.prog.set_filter(&filter) {
                log::error!("updating the XDP program's filter: {e:#}");
            }
        }
        for a in acks {
            let _ = a.send(());
        }
    }

    /// `[announce] peer_local_address`: the XDP program takes them too.
    fn peer_local_addrs(&self) -> Vec<IpAddr> {
        self.announcer
            .as_ref()
            .map_or_else(Vec::new, |a| a.peer_local_addrs().to_vec())
    }

    /// SIGHUP's `[announce]`, first part: what can fail (taking over a
    /// new table or protocol: its stale routes removed, its guard
    /// started), while the announcer keeps running as it was.
    fn prepare_announce(&mut self, cfg: Option<&config::Announce>) -> Result<AnnounceChange> {
        Ok(match (cfg, self.announcer.as_mut()) {
            (Some(c), Some(a)) => AnnounceChange::Reconfig(a.prepare(c)?),
            (Some(c), None) => AnnounceChange::Start(Announcer::start(c)?),
            (None, Some(_)) => AnnounceChange::Stop,
            (None, None) => AnnounceChange::None,
        })
    }

    /// SIGHUP's `[announce]`, second part (cannot fail): unchanged routes
    /// stay.
    fn apply_announce(&mut self, change: AnnounceChange) {
        match change {
            AnnounceChange::Reconfig(r) => {
                if let Some(a) = self.announcer.as_mut() {
                    a.reconfigure(r);
                }
            }
            AnnounceChange::Start(a) => self.announcer = Some(a),
            AnnounceChange::Stop => {
                if let Some(mut a) = self.announcer.take() {
                    a.withdraw_all("[announce] removed");
                }
            }
            AnnounceChange::None => {}
        }
    }

    /// `[announce]`: routes of the VIPs served now in, of the others out.
    fn announce(&mut self) {
        let Some(a) = self.announcer.as_ref() else {
            return;
        };
        let services = self.services();
        let judged = announce::judge(
            a.vips(),
            &services,
            &self.quorum,
            |k| {
                self.health_view.pools.get(k).map(|p| announce::Quorum {
                    up: p.quorum_up,
                    sorry_active: p.sorry_active,
                })
            },
            &self.vrrp_gate.inactive(),
        );
        let local: BTreeSet<IpAddr> = services
            .iter()
            .flat_map(|s| s.local_addrs.iter().copied())
            .collect();
        if let Some(a) = self.announcer.as_mut() {
            a.follow(&judged, &local);
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
                // VRRP: interfaces and script users are checked before
                // anything changes.
                let vrrp = match self.vrrp_setup(&cfg) {
                    Ok(v) => v,
                    Err(e) => {
                        log::error!("reload refused, configuration unchanged: {e:#}");
                        return;
                    }
                };
                // Connection sync and [announce]: everything of theirs that
                // can fail (an interface, the sync sockets, the route table
                // and its guard) is checked or prepared before either
                // changes, so a refused reload leaves both as they run.
                if let Err(e) = self
                    .sync
                    .get_mut()
                    .check_reload(cfg.global.lvs_sync_daemon.as_ref(), cfg.global.sync)
                {
                    log::error!("reload refused, configuration unchanged: {e:#}");
                    return;
                }
                let announce = match self.prepare_announce(cfg.announce.as_ref()) {
                    Ok(a) => a,
                    Err(e) => {
                        log::error!("reload refused, configuration unchanged: [announce]: {e:#}");
                        return;
                    }
                };
                // Checked a moment ago, the sync threads can still fail to
                // start (a race on the interface): the daemon then runs
                // its previous settings again, the prepared [announce] is
                // dropped, and nothing else has changed.
                match self
                    .sync
                    .get_mut()
                    .reload(cfg.global.lvs_sync_daemon.clone(), cfg.global.sync)
                {
                    Ok(true) => log::info!("reload: connection sync daemon restarted"),
                    Ok(false) => {}
                    Err(e) => {
                        log::error!("reload refused, configuration unchanged: {e:#}");
                        return;
                    }
                }
                self.apply_announce(announce);
                self.quorum = quorum_of(&cfg);
                self.vrrp_gate.reconfigure(&cfg.vrrp_instances);
                self.vrrp_reload.reload(vrrp);
                self.state = AdminState {
                    services: cfg.service_specs(),
                    timeouts: cfg.timeouts,
                };
                self.fwmarks.clone_from(&cfg.fwmarks);
                self.checkers = checker_names(&cfg.virtual_servers);
                let sysctls = cfg.dataplane_config().sysctls;
                if sysctls != self.sysctls {
                    log::info!("reload: connection sysctls now {sysctls:?}");
                    self.sysctls = sysctls;
                }
                let run_as = crate::control::script::run_as(
                    cfg.global.script_user.as_deref(),
                    cfg.global.script_group.as_deref(),
                )
                .unwrap_or_default();
                let checked = health::secure_checkers(
                    &cfg.virtual_servers,
                    run_as,
                    cfg.global.enable_script_security,
                );
                match self.health.reload(&checked) {
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

    /// The VRRP part of a reloaded `cfg`, once its interfaces exist and its
    /// script users resolve.
    fn vrrp_setup(&mut self, cfg: &config::Config) -> Result<vrrp_thread::VrrpSetup> {
        for i in &cfg.vrrp_instances {
            let tracked = i.track_interface.iter().map(|t| &t.name);
            for name in std::iter::once(&i.interface).chain(tracked) {
                self.nl
                    .link(name)
                    .with_context(|| format!("vrrp_instance {}: interface {name}", i.name))?;
            }
        }
        let run_as = crate::control::script::run_as(
            cfg.global.script_user.as_deref(),
            cfg.global.script_group.as_deref(),
        )?;
        let mut setup = vrrp_thread::VrrpSetup::new(cfg, run_as)?;
        setup.table_hold = Some(self.sync.get_mut().table_hold());
        Ok(setup)
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
        // The served NICs' addresses, for `-P` (a FULLNAT local address
        // must be one of them).
        let mut nic_addrs = Vec::with_capacity(self.nics.0.len());
        for (ifindex, name) in &self.nics.0 {
            match self.nl.addresses(*ifindex) {
                Ok(a) => nic_addrs.push((name.clone(), a)),
                Err(e) => log::warn!("admin: reading the addresses of {name}: {e:#}"),
            }
        }
        let view = View {
            ctl_rates: &self.rates,
            engine: self.engine,
            nic_addrs,
            nic_names: self.nics.names(),
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

    /// The picture metrics and dumps show: what the listings show (the
    /// workers' merged answers over the running table), with health, VRRP
    /// and the data plane's own counters.
    fn status(&self, vrrp: &VrrpThread, started: Instant) -> Status {
        use std::sync::atomic::Ordering::Relaxed;
        let live = match self.engine.query(&Query::Live, QUERY_TIMEOUT) {
            Ok(r) => query::merge(&r),
            Err(e) => {
                log::warn!("status: {e:#}");
                Default::default()
            }
        };
        let running = self.services();
        let services = self
            .state
            .services
            .iter()
            .map(|spec| {
                let key = spec.key;
                let run = running.iter().find(|s| s.key == key);
                let pool = self.health_view.pools.get(&key);
                let l = live.get(&key);
                let real_servers = spec
                    .dests
                    .iter()
                    .map(|d| {
                        let sa = std::net::SocketAddr::new(d.addr, d.port);
                        let ld = l.and_then(|l| query::dest_of(l, d.addr, d.port));
                        ops::RealServerStatus {
                            address: d.addr,
                            port: d.port,
                            forward: d.fwd.name(),
                            weight: d.weight,
                            running_weight: run.and_then(|r| {
                                r.dests
                                    .iter()
                                    .find(|x| x.addr == d.addr && x.port == d.port)
                                    .map(|x| x.weight)
                            }),
                            alive: pool
                                .and_then(|p| p.servers.get(&sa))
                                .is_none_or(|h| h.alive),
                            checkers: self.checkers.get(&(key, sa)).cloned().unwrap_or_default(),
                            active_conns: ld.map_or(0, |x| x.active_conns),
                            inactive_conns: ld.map_or(0, |x| x.inact_conns),
                            persistent_conns: ld.map_or(0, |x| x.persist_conns),
                            traffic: ld.map(|x| (&x.stats).into()).unwrap_or_default(),
                        }
                    })
                    .collect();
                ops::ServiceStatus {
                    protocol: if key.is_fwmark() {
                        "FWM"
                    } else {
                        key.proto.name()
                    },
                    fwmark: key.is_fwmark().then_some(key.fwmark),
                    address: key.addr,
                    port: key.port,
                    scheduler: spec.sched.name(),
                    persistence_secs: spec.persistence.map(|p| p.as_secs()),
                    sorry_server: pool.and_then(|p| p.sorry_server).map(|a| a.to_string()),
                    sorry_server_active: pool.is_some_and(|p| p.sorry_active),
                    traffic: l.map(|x| (&x.stats).into()).unwrap_or_default(),
                    real_servers,
                }
            })
            .collect();
        let mut drops: Vec<(&'static str, u64)> = Vec::new();
        let mut to_kernel: Vec<(&'static str, u64)> = Vec::new();
        let mut conn_table = ops::ConnTableStatus::default();
        match self.engine.query(&Query::Counters, QUERY_TIMEOUT) {
            Ok(replies) => {
                for r in replies {
                    let query::Reply::Counters(c) = r else {
                        continue;
                    };
                    add_reasons(&mut drops, c.counters.all_drop_reasons());
                    add_reasons(&mut to_kernel, c.counters.all_kernel_reasons());
                    conn_table.entries += c.conns as u64;
                    conn_table.capacity += c.capacity as u64;
                    conn_table.evictions += c.evictions;
                }
            }
            Err(e) => log::warn!("status: {e:#}"),
        }
        let workers = self
            .engine
            .workers()
            .iter()
            .zip(self.engine.counters())
            .enumerate()
            .map(|(i, (w, c))| ops::WorkerStatus {
                worker: i,
                queue: w.queue,
                core: w.core,
                zero_copy: w.zero_copy,
                rx: c.rx.load(Relaxed),
                tx: c.tx.load(Relaxed),
                pass: c.pass.load(Relaxed),
                drop: c.drop.load(Relaxed),
                to_kernel: c.to_kernel.load(Relaxed),
                kernel_port_drop: c.kernel_port_drop.load(Relaxed),
                steered_out: c.steered_out.load(Relaxed),
                steer_drop: c.steer_drop.load(Relaxed),
                tx_ring_full: c.tx_ring_full.load(Relaxed),
                kernel_rx_dropped: c.kernel_rx_dropped.load(Relaxed),
                busy_seconds: c.busy_ns.load(Relaxed) as f64 / 1e9,
            })
            .collect();
        let vrrp_instances = vrrp
            .status()
            .into_iter()
            .map(|v| ops::VrrpInstanceStatus {
                state: match v.state {
                    crate::control::vrrp::State::Initialize => "INIT",
                    crate::control::vrrp::State::Backup => "BACKUP",
                    crate::control::vrrp::State::Master => "MASTER",
                    crate::control::vrrp::State::Fault => "FAULT",
                },
                master: v.master.map(|(a, p)| format!("{a} priority {p}")),
                rejected: crate::control::vrrp::Reject::ALL
                    .iter()
                    .map(|r| (r.name(), v.stats.rejected(*r)))
                    .collect(),
                adverts_rx: v.stats.adverts_rx,
                adverts_tx: v.stats.adverts_tx,
                priority_zero_rx: v.stats.priority_zero_rx,
                priority_zero_tx: v.stats.priority_zero_tx,
                became_master: v.stats.became_master,
                released_master: v.stats.released_master,
                name: v.name,
                interface: v.interface,
                virtual_router_id: v.vrid,
                priority: v.priority,
                virtual_ipaddress: v.vips,
            })
            .collect();
        Status {
            uptime_seconds: started.elapsed().as_secs_f64(),
            services,
            vrrp_instances,
            workers,
            drops,
            to_kernel,
            conn_table,
            xdp: self.prog.status(&self.nics),
            sync: self.sync_status(),
        }
    }

    /// Connection sync's roles and counters for metrics and dumps.
    fn sync_status(&self) -> ops::SyncStatus {
        use std::sync::atomic::Ordering::Relaxed;
        let d = self.sync.borrow();
        let running = d.running();
        let st = &d.stats;
        let link = &self.shared.sync;
        ops::SyncStatus {
            master: running.iter().any(|(r, _)| *r == Role::Master),
            backup: running.iter().any(|(r, _)| *r == Role::Backup),
            sent_messages: st.sent_msgs.load(Relaxed),
            sent_conns: st.sent_conns.load(Relaxed),
            sent_bytes: st.sent_bytes.load(Relaxed),
            send_errors: st.send_errors.load(Relaxed),
            received_messages: st.recv_msgs.load(Relaxed),
            received_conns: st.recv_conns.load(Relaxed),
            wrong_syncid: st.wrong_syncid.load(Relaxed),
            malformed: st.malformed_total(),
            refused_conns: st.refused_conns.load(Relaxed),
            applied_created: link.created.load(Relaxed),
            applied_updated: link.updated.load(Relaxed),
            applied_no_dest: link.no_dest.load(Relaxed),
            applied_refused: link.refused.load(Relaxed),
            queue_drops_out: link.out_drops.load(Relaxed),
            queue_drops_in: link.in_drops.load(Relaxed),
            tables_sent: st.tables_sent.load(Relaxed),
            tables_received: st.tables_done.load(Relaxed),
            mixed_family: st.mixed_family.load(Relaxed),
            not_v0: st.not_v0.load(Relaxed),
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

/// Adds `more` (every reason, in the same order each time) into `acc`.
fn add_reasons(acc: &mut Vec<(&'static str, u64)>, more: Vec<(&'static str, u64)>) {
    if acc.is_empty() {
        *acc = more;
        return;
    }
    for (a, (_, n)) in acc.iter_mut().zip(more) {
        a.1 += n;
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
            quorum_up,
        } => format!(
            "{service}: {}",
            match (quorum_up, sorry_active) {
                (false, true) => "sorry server in (quorum lost)",
                (false, false) => "quorum lost",
                (true, _) => "quorum gained (no sorry server in)",
            }
        ),
        health::HealthEvent::Reset(v) => format!("checking {} virtual servers", v.pools.len()),
    }
}

/// What a listing sees of the running data plane.
struct View<'a> {
    ctl_rates: &'a RateTable,
    engine: &'a Engine,
    /// Each served NIC's name and addresses.
    nic_addrs: Vec<(String, Vec<IpAddr>)>,
    /// The served NICs' names, comma-separated (for messages).
    nic_names: String,
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

    fn local_address_nic(&self, addr: IpAddr) -> Result<String, String> {
        self.nic_addrs
            .iter()
            .find(|(_, a)| a.contains(&addr))
            .map(|(n, _)| n.clone())
            .ok_or_else(|| {
                format!(
                    "local address {addr} is not an address of a NIC lvsfwd serves \
                     (interface = {}): replies to it would never reach lvsfwd",
                    self.nic_names
                )
            })
    }

    fn zero_counters(&self, svc: Option<&ServiceKey>) {
        if let Err(e) = self.engine.query(&Query::Zero(svc.copied()), QUERY_TIMEOUT) {
            log::warn!("zeroing counters: {e:#}");
        }
    }
}
