//! Starting the workers (sockets, mesh, pinned threads and the ready
//! handshake), talking to them (queries, waiting for a snapshot to be
//! applied) and stopping them.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use crossbeam::channel;

use super::mesh::Mesh;
use super::worker::Worker;
use crate::config::ZeroCopy;
use crate::dataplane::Dataplane;
use crate::dataplane::query::{Query, Reply};
use crate::xsk::afxdp::{Xsk, XskOptions};
use crate::xsk::prog::XdpProgram;
use crate::xsk::shared::{Shared, WorkerCounters};
use crate::xsk::steer;

/// How long `start` waits for the workers to come up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What the engine needs besides the data planes.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The data-plane NIC (in the calling thread's network namespace).
    pub ifname: String,
    /// The RX queues to serve, one worker each.
    pub queues: Vec<u32>,
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
}

/// One worker as the engine sees it from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    pub queue: u32,
    pub core: usize,
    /// Whether the kernel runs this queue's socket in zero-copy mode.
    pub zero_copy: bool,
}

struct Handle {
    info: WorkerInfo,
    counters: Arc<WorkerCounters>,
    thread: Option<JoinHandle<Dataplane>>,
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
    Ok(())
}

/// Opens and registers one socket per queue, in queue order.
fn open_sockets(
    cfg: &EngineConfig,
    register_socket: &mut dyn FnMut(u32, RawFd) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Xsk>> {
    let mut socks = Vec::with_capacity(cfg.queues.len());
    for &q in &cfg.queues {
        let x = Xsk::open(&XskOptions {
            ifname: &cfg.ifname,
            queue: q,
            frames: cfg.frames_per_queue,
            zero_copy: cfg.zero_copy,
        })?;
        register_socket(q, x.fd())
            .with_context(|| format!("{} queue {q}: registering the socket", cfg.ifname))?;
        log::info!(
            "{} queue {q}: AF_XDP socket bound ({} mode)",
            cfg.ifname,
            if x.is_zero_copy() {
                "zero-copy"
            } else {
                "copy"
            }
        );
        socks.push(x);
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
        Engine::start_with(
            cfg,
            &mut |q, fd| prog.register_socket(q, fd),
            shared,
            dataplanes,
        )
    }

    /// [`Engine::start`] for a caller that points the XDP program's XSKMAP
    /// at the sockets itself: `register_socket(queue, fd)` is called for
    /// each socket before its worker starts.
    pub fn start_with(
        cfg: &EngineConfig,
        register_socket: &mut dyn FnMut(u32, RawFd) -> anyhow::Result<()>,
        shared: Arc<Shared>,
        mut dataplanes: Vec<Dataplane>,
    ) -> anyhow::Result<Engine> {
        validate(cfg, dataplanes.len())?;
        let n = cfg.queues.len();
        let socks = open_sockets(cfg, register_socket)?;

        let mesh = if n > 1 {
            for (i, dp) in dataplanes.iter_mut().enumerate() {
                dp.conns
                    .set_fullnat_ports(steer::fullnat_ports(i as u32, n as u32));
            }
            Some(Arc::new(Mesh::new(
                cfg.batch,
                cfg.frames_per_queue,
                &socks,
            )?))
        } else {
            None
        };

        let core_ids = core_affinity::get_core_ids().unwrap_or_default();
        let (ready_tx, ready_rx) = mpsc::channel::<usize>();
        let (reply_tx, replies) = channel::bounded(n);
        let mut engine = Engine {
            shared: Arc::clone(&shared),
            workers: Vec::with_capacity(n),
            queries: Vec::with_capacity(n),
            replies,
        };
        for (i, (xsk, dp)) in socks.into_iter().zip(dataplanes).enumerate() {
            let core = cfg
                .cores
                .get(i)
                .copied()
                .unwrap_or_else(|| core_ids.get(i % core_ids.len().max(1)).map_or(i, |c| c.id));
            let counters = Arc::new(WorkerCounters::default());
            let info = WorkerInfo {
                queue: xsk.queue(),
                core,
                zero_copy: xsk.is_zero_copy(),
            };
            let (query_tx, query_rx) = channel::bounded(1);
            engine.queries.push(query_tx);
            let mut w = Worker::new(
                i,
                xsk,
                dp,
                Arc::clone(&shared),
                Arc::clone(&counters),
                mesh.clone(),
                cfg.batch,
            );
            w.idle_spin_ns = u64::try_from(cfg.idle_spin.as_nanos()).unwrap_or(u64::MAX);
            w.queries = Some((query_rx, reply_tx.clone()));
            let ready = ready_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("lvsfwd-q{}", info.queue))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        log::warn!("worker {i}: could not pin to core {core}");
                    }
                    w.run(ready)
                })
                .context("spawning a worker")?;
            engine.workers.push(Handle {
                info,
                counters,
                thread: Some(thread),
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
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                match t.join() {
                    Ok(dp) => out.push(dp),
                    Err(_) => log::error!("worker of queue {} panicked", w.info.queue),
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
