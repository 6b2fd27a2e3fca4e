//! Starting the workers (sockets, mesh, pinned threads and the ready
//! handshake), talking to them (queries, waiting for a snapshot to be
//! applied), noticing one that died, and stopping them.
//!
//! A worker dies when its thread panics (the panic is caught at the top of
//! the thread, its message kept) or when its socket fails for good; either
//! way its queue is no longer served, and [`Engine::dead_worker`] says so
//! at once, so that the daemon does not live on half-served.

use std::any::Any;
use std::fmt;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use crossbeam::channel;

use super::mesh::Mesh;
use super::worker::{Worker, WorkerIo};
use crate::config::ZeroCopy;
use crate::dataplane::Dataplane;
use crate::dataplane::query::{Query, Reply};
use crate::xsk::afxdp::{BindOptions, WorkerUmem};
use crate::xsk::kport::KernelPort;
use crate::xsk::prog::XdpProgram;
use crate::xsk::shared::{Shared, WorkerCounters};
use crate::xsk::steer;

/// How long `start` waits for the workers to come up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What the engine needs besides the data planes.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The data-plane NICs, in [`NicId`](crate::dest::NicId) order (in the
    /// calling thread's network namespace). Worker i serves queue
    /// `queues[i]` of every one of them that has it, from one UMEM, so that
    /// a frame leaves through any of those NICs without a copy.
    pub ifnames: Vec<String>,
    /// The RX queues to serve, one worker each (each of at least one NIC).
    pub queues: Vec<u32>,
    /// How many RX queues each NIC has, in `ifnames` order: worker i binds
    /// a socket on NIC k only when `queues[i] < nic_queues[k]`. Empty:
    /// every NIC has every queue of `queues`. A frame a worker sends out
    /// of a NIC it has no socket on is handed to a worker that has one
    /// (module doc of [`super`], "NICs with different queue counts").
    pub nic_queues: Vec<u32>,
    /// Worker i runs on core `cores[i]`; workers beyond the list (or all,
    /// if it is empty) on core i modulo the number of cores.
    pub cores: Vec<usize>,
    pub zero_copy: ZeroCopy,
    /// UMEM chunks per queue (a power of two, e.g. 4096).
    pub frames_per_queue: u32,
    /// Frames per RX batch (e.g. 64).
    pub batch: usize,
    /// How long a worker polls empty rings before sleeping (0: at once).
    pub idle_spin: Duration,
    /// The kernel port's name ([`crate::xsk::kport::port_name`]): a tap
    /// with one queue per worker, created by `start`, gone when the
    /// workers end. `None`: no kernel port; Pass and Kernel frames are
    /// recycled.
    pub kernel_port: Option<String>,
}

/// One worker as the engine sees it from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    pub queue: u32,
    pub core: usize,
    /// Whether the kernel runs this queue's socket in zero-copy mode.
    pub zero_copy: bool,
}

/// A worker that ended while the engine was running: its queue's traffic
/// is no longer served. `Display`: `worker N (queue Q) died: CAUSE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerDeath {
    /// The worker's index (queue order).
    pub worker: usize,
    pub queue: u32,
    /// The panic message, or why its socket failed.
    pub cause: String,
}

impl fmt::Display for WorkerDeath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worker {} (queue {}) died: {}",
            self.worker, self.queue, self.cause
        )
    }
}

/// The message of a panic payload (`panic!` with a literal gives a
/// `&str`, with a format a `String`; anything else has no text).
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked with a non-string payload".to_string()
    }
}

/// Runs a worker's body (`Worker::run`) on its thread: its data plane
/// back, and `death` set with the cause when it failed (its data plane
/// still back) or panicked (the panic caught: no data plane).
pub(super) fn guarded(
    death: &OnceLock<String>,
    body: impl FnOnce() -> (Dataplane, Option<String>),
) -> Option<Dataplane> {
    // Nothing of the worker is used after a panic: its state unwinds away
    // with it.
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok((dp, None)) => Some(dp),
        Ok((dp, Some(failure))) => {
            let _ = death.set(failure);
            Some(dp)
        }
        Err(payload) => {
            let _ = death.set(panic_message(payload.as_ref()));
            None
        }
    }
}

struct Handle {
    info: WorkerInfo,
    counters: Arc<WorkerCounters>,
    /// Taken when joined; a worker that panicked yields no data plane.
    thread: Option<JoinHandle<Option<Dataplane>>>,
    /// Set by the worker's thread when it dies (before it ends).
    death: Arc<OnceLock<String>>,
}

/// The running workers.
pub struct Engine {
    shared: Arc<Shared>,
    workers: Vec<Handle>,
    /// Per worker: where the control thread's questions go.
    queries: Vec<channel::Sender<Query>>,
    /// Every worker's answers, tagged with its index.
    replies: channel::Receiver<(usize, Reply)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.workers.iter().map(|w| &w.info))
            .finish()
    }
}

/// Rejects settings no engine can run with: no queue, a queue twice, one
/// data plane too many or too few, no batch, too few frames.
fn validate(cfg: &EngineConfig, planes: usize) -> anyhow::Result<()> {
    let n = cfg.queues.len();
    ensure!(n > 0, "no RX queue to serve");
    ensure!(!cfg.ifnames.is_empty(), "no NIC to serve");
    ensure!(
        cfg.ifnames.len() <= usize::from(crate::dest::NicId::MAX) + 1,
        "{} NICs are too many",
        cfg.ifnames.len()
    );
    ensure!(planes == n, "{planes} data planes for {n} queues");
    ensure!(cfg.batch > 0, "batch must be at least 1");
    ensure!(
        cfg.frames_per_queue as usize >= 4 * cfg.batch * n,
        "{} frames per queue are too few for batches of {} over {} queues",
        cfg.frames_per_queue,
        cfg.batch,
        n
    );
    let mut seen = cfg.queues.clone();
    seen.sort_unstable();
    seen.dedup();
    ensure!(seen.len() == n, "queue listed twice in {:?}", cfg.queues);
    if !cfg.nic_queues.is_empty() {
        ensure!(
            cfg.nic_queues.len() == cfg.ifnames.len(),
            "{} queue counts for {} NICs",
            cfg.nic_queues.len(),
            cfg.ifnames.len()
        );
        for (ifname, &c) in cfg.ifnames.iter().zip(&cfg.nic_queues) {
            ensure!(
                cfg.queues.iter().any(|&q| q < c),
                "{ifname} has {c} RX queues: none of the queues {:?} to serve",
                cfg.queues
            );
        }
        for &q in &cfg.queues {
            ensure!(
                cfg.nic_queues.iter().any(|&c| q < c),
                "no NIC has RX queue {q}"
            );
        }
    }
    Ok(())
}

/// Whether worker `w` has a socket on NIC `nic` (it serves queue
/// `queues[w]`, and the NIC has that queue).
pub(super) fn serves(cfg: &EngineConfig, w: usize, nic: usize) -> bool {
    cfg.nic_queues
        .get(nic)
        .is_none_or(|&c| cfg.queues.get(w).is_some_and(|&q| q < c))
}

/// Creates one UMEM per queue and binds and registers one socket per NIC
/// that has the queue on each (queue `q` of every such NIC shares worker
/// `q`'s UMEM), in queue order, sockets in NIC order (`None` where the
/// NIC has no such queue).
fn open_sockets(
    cfg: &EngineConfig,
    register_socket: &mut dyn FnMut(usize, u32, RawFd) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<WorkerIo>> {
    let mut socks = Vec::with_capacity(cfg.queues.len());
    for (w, &q) in cfg.queues.iter().enumerate() {
        let (umem, pool) = WorkerUmem::new(cfg.frames_per_queue)?;
        let mut xsks = Vec::with_capacity(cfg.ifnames.len());
        let mut first = true;
        for (nic, ifname) in cfg.ifnames.iter().enumerate() {
            if !serves(cfg, w, nic) {
                xsks.push(None);
                continue;
            }
            let x = umem.bind(&BindOptions {
                ifname,
                queue: q,
                zero_copy: cfg.zero_copy,
            })?;
            register_socket(nic, q, x.fd())
                .with_context(|| format!("{ifname} queue {q}: registering the socket"))?;
            log::info!(
                "{ifname} queue {q}: AF_XDP socket bound ({} mode{})",
                if x.is_zero_copy() {
                    "zero-copy"
                } else {
                    "copy"
                },
                if first { "" } else { ", UMEM shared" }
            );
            first = false;
            xsks.push(Some((ifname.clone(), x)));
        }
        socks.push((xsks, umem, pool));
    }
    Ok(socks)
}

impl Engine {
    /// Opens one socket per queue (registering each in the XDP program),
    /// spawns one pinned worker per queue running `dataplanes[i]` and
    /// returns once every worker polls. Call it from a thread in the NIC's
    /// network namespace: the sockets and the workers live there.
    pub fn start(
        cfg: &EngineConfig,
        prog: &mut XdpProgram,
        shared: Arc<Shared>,
        dataplanes: Vec<Dataplane>,
    ) -> anyhow::Result<Engine> {
        anyhow::ensure!(
            cfg.ifnames.len() == 1,
            "one XDP program for {} NICs",
            cfg.ifnames.len()
        );
        Engine::start_with(
            cfg,
            &mut |_, q, fd| prog.register_socket(q, fd),
            shared,
            dataplanes,
        )
    }

    /// [`Engine::start`] for a caller that points the XDP program's XSKMAP
    /// at the sockets itself: `register_socket(nic, queue, fd)` is called
    /// for each socket (NIC by index in `ifnames`) before its worker
    /// starts.
    pub fn start_with(
        cfg: &EngineConfig,
        register_socket: &mut dyn FnMut(usize, u32, RawFd) -> anyhow::Result<()>,
        shared: Arc<Shared>,
        mut dataplanes: Vec<Dataplane>,
    ) -> anyhow::Result<Engine> {
        validate(cfg, dataplanes.len())?;
        let n = cfg.queues.len();
        let _ = shared.sync.inbound.set(
            (0..n)
                .map(|_| crossbeam::queue::ArrayQueue::new(crate::xsk::shared::SYNC_QUEUE))
                .collect(),
        );
        let socks = open_sockets(cfg, register_socket)?;

        let mesh = if n > 1 {
            for (i, dp) in dataplanes.iter_mut().enumerate() {
                dp.conns
                    .set_fullnat_ports(steer::fullnat_ports(i as u32, n as u32));
            }
            let umems: Vec<WorkerUmem> = socks.iter().map(|(_, u, _)| u.clone()).collect();
            let has_nic = socks
                .iter()
                .map(|(x, _, _)| x.iter().map(Option::is_some).collect())
                .collect();
            Some(Arc::new(Mesh::new(
                cfg.batch,
                cfg.frames_per_queue,
                &umems,
                has_nic,
            )?))
        } else {
            None
        };

        let counters: Vec<Arc<WorkerCounters>> = (0..n)
            .map(|_| Arc::new(WorkerCounters::default()))
            .collect();
        let mut kport = match &cfg.kernel_port {
            Some(name) => {
                let k = KernelPort::create(name, n)?;
                log::info!("kernel port {} up ({n} queues)", k.name());
                k.into_queues(&counters).into_iter().map(Some).collect()
            }
            None => Vec::new(),
        };
        kport.resize_with(n, || None);

        let core_ids = core_affinity::get_core_ids().unwrap_or_default();
        let (ready_tx, ready_rx) = mpsc::channel::<usize>();
        let (reply_tx, replies) = channel::bounded(n);
        let mut engine = Engine {
            shared: Arc::clone(&shared),
            workers: Vec::with_capacity(n),
            queries: Vec::with_capacity(n),
            replies,
        };
        let planes = socks.into_iter().zip(dataplanes).zip(counters).zip(kport);
        for (i, (((io, dp), counters), kport)) in planes.enumerate() {
            let core = cfg
                .cores
                .get(i)
                .copied()
                .unwrap_or_else(|| core_ids.get(i % core_ids.len().max(1)).map_or(i, |c| c.id));
            let info = WorkerInfo {
                queue: cfg.queues[i],
                core,
                zero_copy: io.0.iter().flatten().all(|(_, x)| x.is_zero_copy()),
            };
            let (query_tx, query_rx) = channel::bounded(1);
            engine.queries.push(query_tx);
            let mut w = Worker::new(
                i,
                io,
                dp,
                Arc::clone(&shared),
                Arc::clone(&counters),
                mesh.clone(),
                cfg.batch,
            );
            w.idle_spin_ns = u64::try_from(cfg.idle_spin.as_nanos()).unwrap_or(u64::MAX);
            w.queries = Some((query_rx, reply_tx.clone()));
            w.kport = kport;
            let ready = ready_tx.clone();
            let death = Arc::new(OnceLock::new());
            let dies = Arc::clone(&death);
            let thread = std::thread::Builder::new()
                .name(format!("lvsfwd-q{}", info.queue))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        log::warn!("worker {i}: could not pin to core {core}");
                    }
                    guarded(&dies, move || w.run(ready))
                })
                .context("spawning a worker")?;
            engine.workers.push(Handle {
                info,
                counters,
                thread: Some(thread),
                death,
            });
        }
        drop(ready_tx);
        for _ in 0..n {
            if ready_rx.recv_timeout(START_TIMEOUT).is_err() {
                // Dropping `engine` stops and joins the ones that did.
                bail!("the workers did not come up");
            }
        }
        Ok(engine)
    }

    /// Asks every worker `q` and returns their answers in worker order.
    /// Workers answer at their next batch boundary (an idle one within its
    /// poll timeout); fails when one does not answer within `timeout`.
    pub fn query(&self, q: &Query, timeout: Duration) -> anyhow::Result<Vec<Reply>> {
        // Drop answers to an earlier question that timed out.
        while self.replies.try_recv().is_ok() {}
        for tx in &self.queries {
            tx.send_timeout(q.clone(), timeout)
                .map_err(|_| anyhow::anyhow!("a worker is not taking questions"))?;
        }
        let mut out: Vec<Option<Reply>> = vec![None; self.queries.len()];
        let deadline = Instant::now() + timeout;
        for _ in 0..self.queries.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let (i, r) = self
                .replies
                .recv_timeout(left)
                .map_err(|_| anyhow::anyhow!("a worker did not answer within {timeout:?}"))?;
            out[i] = Some(r);
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Waits until every worker has applied snapshot generation `g` (or a
    /// later one); false if one has not within `timeout`. A busy worker
    /// applies it at its next batch, an idle one when its `poll` returns
    /// (at most its timeout).
    pub fn wait_applied(&self, g: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.workers.iter().all(|w| {
                w.counters.applied_generation.load(Ordering::Acquire) >= g
                    || w.thread.as_ref().is_none_or(|t| t.is_finished())
            });
            if done {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// The first worker that died while the engine runs (not stopping):
    /// one whose thread panicked or whose socket failed, or whose thread
    /// ended for any other reason. Its queue is not served any more; the
    /// caller is expected to stop the engine. Cheap: a few atomic loads.
    pub fn dead_worker(&self) -> Option<WorkerDeath> {
        if self.shared.should_stop() {
            return None;
        }
        self.workers.iter().enumerate().find_map(|(i, w)| {
            let ended = w.thread.as_ref().is_some_and(|t| t.is_finished());
            let cause = match w.death.get() {
                Some(c) => c.clone(),
                None if ended => "its thread ended".to_string(),
                None => return None,
            };
            Some(WorkerDeath {
                worker: i,
                queue: w.info.queue,
                cause,
            })
        })
    }

    /// Each worker's counters, in queue order.
    pub fn counters(&self) -> Vec<Arc<WorkerCounters>> {
        self.workers
            .iter()
            .map(|w| Arc::clone(&w.counters))
            .collect()
    }

    /// Queue, core and mode of each worker.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.workers.iter().map(|w| w.info.clone()).collect()
    }

    /// Sets `shared.stop`, joins the workers and returns their data planes
    /// (for final statistics and listings), in queue order. A worker that
    /// panicked is logged and left out.
    pub fn stop(mut self) -> Vec<Dataplane> {
        self.join()
    }

    fn join(&mut self) -> Vec<Dataplane> {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut out = Vec::with_capacity(self.workers.len());
        for (i, w) in self.workers.iter_mut().enumerate() {
            if let Some(t) = w.thread.take() {
                match t.join() {
                    Ok(Some(dp)) => out.push(dp),
                    Ok(None) | Err(_) => {
                        let cause = w.death.get().map_or("panicked", |c| c.as_str());
                        log::error!("worker {i} (queue {}) died: {cause}", w.info.queue);
                    }
                }
            }
        }
        out
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // An engine dropped without `stop` (an error path) must not leave
        // threads running on its sockets.
        if self.workers.iter().any(|w| w.thread.is_some()) {
            self.join();
        }
    }
}

/// Moves the calling thread, and so every thread it spawns from now on, to
/// the cores that run no worker (`worker_cores`), if there are any: the
/// control plane's periodic wake-ups (its loop, VRRP, health checks) then
/// never preempt a worker. Returns the cores it moved to; empty (nothing
/// changed) when the workers take every core. Workers pin themselves, so
/// call it before or after [`Engine::start`].
pub fn keep_off_worker_cores(worker_cores: &[usize]) -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the
    // calling thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of_val(&set);
    let mut rest = Vec::new();
    for c in 0..max {
        // SAFETY: `c` is below the set's capacity in bits.
        let allowed = unsafe { libc::CPU_ISSET(c, &set) };
        if allowed && !worker_cores.contains(&c) {
            rest.push(c);
        }
    }
    if rest.is_empty() {
        return Ok(rest);
    }
    // SAFETY: as above.
    let mut only: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in &rest {
        // SAFETY: `c` came from the set's own range.
        unsafe { libc::CPU_SET(c, &mut only) };
    }
    // SAFETY: `only` is a valid cpu_set_t of the size passed; pid 0 is the
    // calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&only), &only) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rest)
}
