//! The AF_XDP engine: one pinned worker thread per RX queue, each owning an
//! AF_XDP socket and its UMEM, running the pure data plane over batches of
//! frames and sending the results back out of the same NIC (a one-armed
//! director).
//!
//! # A worker's round (the hot path)
//! 1. control plane: if the snapshot generation changed, apply it to the
//!    data plane (next hops, own MAC and addresses, the service table as a
//!    hitless diff, timeouts); run the connection timers (`Dataplane::tick`)
//!    with `now` from `CLOCK_MONOTONIC`; answer a pending control-thread
//!    query (`dataplane::query`);
//! 2. recycle: completed TX chunks go back to the free list, the free list
//!    goes onto the fill ring (kept full), and when the kernel sets the fill
//!    ring's need-wakeup flag it gets a `poll`;
//! 3. receive up to `batch` frames; each is wrapped as a
//!    [`FrameBuf`] over its whole chunk with `head` where the kernel put it
//!    (so tunnels can grow it into the headroom) and handed to
//!    `Dataplane::process`. `Tx` queues the frame (possibly starting
//!    earlier in its chunk than it was received) for transmission; `Pass`
//!    cannot be given back to the kernel from an AF_XDP socket, so it is
//!    counted and recycled like `Drop` (keeping the kernel's own traffic
//!    away from the sockets is the XDP program's job);
//! 4. transmit the batch; `sendto` only when the TX ring asks for a wakeup,
//!    as often as it takes to drain it (copy mode sends 32 frames a call);
//! 5. publish counters. A worker that found nothing to do for a while
//!    sleeps in `poll` (bounded, so timers still run) instead of spinning.
//!
//! Per frame nothing allocates (all buffers are sized at start) and nothing
//! locks (rings are single-producer/single-consumer, the snapshot is read
//! through `arc_swap`, hand-over queues are lock-free).
//!
//! # Several queues: software steering
//! The NIC's RSS hash puts the client side of a NAT connection and the real
//! server's replies on queues of its choosing, but each worker has its own
//! connection table. Every worker therefore computes, for each received
//! frame, the owner worker of its connection ([`SteerMap`]: a hash of the
//! client side, the same from both directions; FULLNAT local ports are
//! partitioned per worker, so a reply's destination port names its owner).
//! A frame owned elsewhere is copied, once, into a chunk of the owner's
//! UMEM that the owner lent to this worker beforehand, and its descriptor
//! is pushed onto the owner's inbox; the owner processes it like its own
//! RX and transmits it from its own socket. Per ordered worker pair there
//! is a lock-free queue of lent chunks (`crossbeam::queue::ArrayQueue`,
//! refilled by the lender from its free list), and per worker one inbox;
//! a sleeping owner is woken through an eventfd only when it is asleep.
//! A frame that finds no lent chunk or a full inbox is dropped and counted
//! (`steer_drop`). With one queue none of this exists.
//!
//! # Deliberately not done
//! Per-worker scheduler state is not shared (rr/wrr/lc run per worker, as
//! per-CPU state would); services added while running are steered from the
//! next snapshot on; multi-buffer frames are not enabled.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use crossbeam::channel;
use crossbeam::queue::ArrayQueue;

use crate::config::ZeroCopy;
use crate::dataplane::query::{self, Query, Reply};
use crate::dataplane::{Dataplane, Verdict};
use crate::time::Timestamp;
use crate::wire::{self, FrameBuf};
use crate::xsk::shared::{Shared, WorkerCounters};

use super::afxdp::{Doorbell, UmemArea, Xsk, XskOptions, chunk_base};
pub use super::nic::rx_queue_count;
use super::prog::XdpProgram;
use super::steer::{self, SteerMap};

/// A good `frames_per_queue` (16 MiB of UMEM per queue).
pub const DEFAULT_FRAMES_PER_QUEUE: u32 = 4096;
/// A good `batch`.
pub const DEFAULT_BATCH: usize = 64;
/// How far ahead in a batch the connection index slots of a frame are
/// prefetched, and its connection entry (see `round`).
const SLOTS_AHEAD: usize = 2;
const ENTRY_AHEAD: usize = 1;

/// Default of lb.toml's `idle_spin_us`: how long a worker keeps polling
/// its rings after the last frame before it sleeps in `poll`. A sleeping
/// worker needs the kernel to wake it (an interrupt, a reschedule: tens of
/// microseconds to milliseconds on a VM) and the frames wait meanwhile;
/// spinning through the gaps between bursts keeps that out of the latency
/// at moderate load, at the price of a busy core for that long after each
/// burst.
pub use crate::config::DEFAULT_IDLE_SPIN;
/// Longest sleep of an idle worker: bounds how late timers run and how
/// long `stop` waits.
const IDLE_POLL_MS: i32 = 50;
/// How often a worker copies the socket's kernel statistics.
const KERNEL_STATS_EVERY: Duration = Duration::from_secs(1);
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

/// What the workers of a multi-queue engine share.
struct Mesh {
    n: usize,
    /// Per worker: descriptors (in its own UMEM) of frames handed to it.
    inbox: Vec<ArrayQueue<(u64, u32)>>,
    /// `lend[owner * n + borrower]`: empty chunks of `owner`'s UMEM that
    /// `borrower` may fill.
    lend: Vec<ArrayQueue<u64>>,
    lend_depth: usize,
    areas: Vec<Arc<UmemArea>>,
    bells: Vec<Doorbell>,
}

/// `CLOCK_MONOTONIC` as a data-plane timestamp (the clock every worker and
/// the control plane share).
pub fn monotonic_now() -> Timestamp {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Timestamp::from_nanos((ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64)
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
        let n = cfg.queues.len();
        ensure!(n > 0, "no RX queue to serve");
        ensure!(
            dataplanes.len() == n,
            "{} data planes for {} queues",
            dataplanes.len(),
            n
        );
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

        let mut socks = Vec::with_capacity(n);
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

        let mesh = if n > 1 {
            let lend_depth = (2 * cfg.batch).min(cfg.frames_per_queue as usize / (2 * n));
            let mut bells = Vec::with_capacity(n);
            for _ in 0..n {
                bells.push(Doorbell::new().context("eventfd")?);
            }
            Some(Arc::new(Mesh {
                n,
                inbox: (0..n)
                    .map(|_| ArrayQueue::new((4 * cfg.batch).max(256)))
                    .collect(),
                lend: (0..n * n)
                    .map(|_| ArrayQueue::new(lend_depth.max(1)))
                    .collect(),
                lend_depth,
                areas: socks.iter().map(|x| Arc::clone(x.area())).collect(),
                bells,
            }))
        } else {
            None
        };
        if n > 1 {
            for (i, dp) in dataplanes.iter_mut().enumerate() {
                dp.conns
                    .set_fullnat_ports(steer::fullnat_ports(i as u32, n as u32));
            }
        }

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
        let deadline = std::time::Instant::now() + timeout;
        for _ in 0..self.queries.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
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
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let done = self.workers.iter().all(|w| {
                w.counters.applied_generation.load(Ordering::Acquire) >= g
                    || w.thread.as_ref().is_none_or(|t| t.is_finished())
            });
            if done {
                return true;
            }
            if std::time::Instant::now() >= deadline {
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

/// One queue's worker: everything it touches per frame is its own.
struct Worker {
    me: usize,
    xsk: Xsk,
    area: Arc<UmemArea>,
    dp: Dataplane,
    shared: Arc<Shared>,
    counters: Arc<WorkerCounters>,
    batch: usize,
    /// Chunks this worker owns and is not using (capacity: every chunk).
    free: Vec<u64>,
    rx: Vec<(u64, u32)>,
    tx: Vec<(u64, u32)>,
    /// Frames on the TX ring not yet completed.
    in_flight: u32,
    seen_generation: Option<u64>,
    mesh: Option<Arc<Mesh>>,
    steer: SteerMap,
    /// Per peer: a chunk it lent that this worker took but could not hand
    /// over (full inbox); used first next time.
    held: Vec<Option<u64>>,
    /// Per peer: frames were pushed to its inbox this round.
    rang: Vec<bool>,
    steered_out: u64,
    steer_drop: u64,
    tx_ring_full: u64,
    /// When this worker last had work (`idle_spin` counts from here).
    last_busy: Timestamp,
    idle_spin_ns: u64,
    last_kernel_stats: Timestamp,
    /// The control thread's questions and where answers go.
    queries: Option<(channel::Receiver<Query>, channel::Sender<(usize, Reply)>)>,
}

impl Worker {
    fn new(
        me: usize,
        xsk: Xsk,
        dp: Dataplane,
        shared: Arc<Shared>,
        counters: Arc<WorkerCounters>,
        mesh: Option<Arc<Mesh>>,
        batch: usize,
    ) -> Worker {
        let frames = xsk.area().frames() as usize;
        let mut free = Vec::with_capacity(frames);
        free.extend(xsk.all_chunks());
        let peers = mesh.as_ref().map_or(1, |m| m.n);
        Worker {
            me,
            area: Arc::clone(xsk.area()),
            xsk,
            steer: SteerMap::new(&dp.services, peers as u32),
            dp,
            shared,
            counters,
            batch,
            free,
            rx: Vec::with_capacity(batch),
            tx: Vec::with_capacity(2 * batch),
            in_flight: 0,
            seen_generation: None,
            mesh,
            held: vec![None; peers],
            rang: vec![false; peers],
            steered_out: 0,
            steer_drop: 0,
            tx_ring_full: 0,
            last_busy: Timestamp::ZERO,
            idle_spin_ns: 0,
            last_kernel_stats: Timestamp::ZERO,
            queries: None,
        }
    }

    /// Answers the control thread's pending question, if any (batch
    /// boundary only: answering may allocate).
    fn serve_queries(&mut self, now: Timestamp) {
        if let Some((rx, tx)) = &self.queries
            && let Ok(q) = rx.try_recv()
        {
            let _ = tx.send((self.me, query::answer(&mut self.dp, &q, now)));
        }
    }

    fn run(mut self, ready: mpsc::Sender<usize>) -> Dataplane {
        self.sync_snapshot();
        self.lend();
        self.xsk.refill(&mut self.free, 0);
        // The receiver may have given up (start failed elsewhere); the stop
        // flag then ends this loop.
        let _ = ready.send(self.me);
        drop(ready);
        while !self.shared.should_stop() {
            self.round();
        }
        self.publish();
        self.kernel_stats();
        self.dp
    }

    fn sync_snapshot(&mut self) {
        let g = self.shared.generation();
        if self.seen_generation != Some(g) {
            let s = self.shared.load();
            // A new service table (reload, lvsadm, health checks) is applied
            // as a diff: established connections keep their real servers.
            if let Some(sum) = self.dp.apply_snapshot(&s) {
                if !sum.is_noop() {
                    log::info!("worker {}: service table applied: {sum:?}", self.me);
                }
                if let Some(m) = &self.mesh {
                    self.steer = SteerMap::new(&self.dp.services, m.n as u32);
                }
            }
            self.seen_generation = Some(s.generation);
            self.counters
                .applied_generation
                .store(s.generation, Ordering::Release);
        }
    }

    fn round(&mut self) {
        let now = monotonic_now();
        self.sync_snapshot();
        self.dp.tick(now);
        self.serve_queries(now);

        let done = self.xsk.reap_completions(&mut self.free);
        self.in_flight = self.in_flight.saturating_sub(done);
        self.lend();
        self.xsk.refill(&mut self.free, 0);
        if self.xsk.fill_needs_wakeup() {
            self.wakeup_error(self.xsk.poll(None, 0));
        }

        let got = self.xsk.receive(&mut self.rx);
        // Software pipelining over the batch (crate::hint): every frame's
        // headers first, then, while frame i is processed, the connection
        // entry of frame i+1 and the index slots of frame i+2, so their
        // cache misses overlap instead of following one another.
        for &(addr, _) in &self.rx[..got] {
            self.area.prefetch(addr);
        }
        for i in 0..got {
            if let Some(&(a, l)) = self.rx[..got].get(i + SLOTS_AHEAD) {
                if let Some(f) = self.peek(a, l) {
                    self.dp.prefetch_slots(f);
                }
            }
            if let Some(&(a, l)) = self.rx[..got].get(i + ENTRY_AHEAD) {
                if let Some(f) = self.peek(a, l) {
                    self.dp.prefetch_entry(f);
                }
            }
            let (addr, len) = self.rx[i];
            self.frame(addr, len, true, now);
        }
        let handed = self.drain_inbox(now);

        self.flush_tx();
        if self.in_flight > 0 {
            let r = self.xsk.drain_tx().map(|_| ());
            self.wakeup_error(r);
        }
        self.ring_peers();
        self.publish();
        if now.since(self.last_kernel_stats) >= KERNEL_STATS_EVERY {
            self.last_kernel_stats = now;
            self.kernel_stats();
        }

        if got + handed > 0 {
            self.last_busy = now;
        } else if now.0.saturating_sub(self.last_busy.0) >= self.idle_spin_ns {
            self.sleep();
            // Whatever woke it (frames, a peer, the timeout) starts a new
            // spin.
            self.last_busy = monotonic_now();
        }
    }

    fn wakeup_error(&self, r: std::io::Result<()>) {
        if let Err(e) = r {
            log::warn!("queue {}: waking the kernel failed: {e}", self.xsk.queue());
        }
    }

    /// The bytes of a received frame not yet processed, read only to
    /// prefetch for it; `None` for a descriptor outside the UMEM.
    #[inline]
    fn peek(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let base = chunk_base(addr);
        if !self.area.is_chunk(base) {
            return None;
        }
        let head = (addr - base) as usize;
        // SAFETY: the chunk came off this worker's RX ring and is not yet
        // processed: this worker owns it and holds no mutable slice over
        // it while the returned one lives (it dies before `frame` runs).
        let chunk: &[u8] = unsafe { self.area.chunk_mut(base) };
        chunk.get(head..head + len as usize)
    }

    /// One frame at `addr` (inside a chunk this worker owns), from its RX
    /// ring or its inbox.
    fn frame(&mut self, addr: u64, len: u32, from_rx: bool, now: Timestamp) {
        let base = chunk_base(addr);
        if !self.area.is_chunk(base) {
            // Only the kernel and peers write descriptors, both with our
            // addresses; never index memory on a bad one.
            debug_assert!(false, "descriptor outside the UMEM: {addr:#x}");
            return;
        }
        let head = (addr - base) as usize;
        // SAFETY: the chunk came off this worker's RX ring or inbox, so it
        // owns it (afxdp module doc) until it is queued for TX or recycled
        // below; no other slice over it exists.
        let chunk = unsafe { self.area.chunk_mut(base) };
        let mut fb = FrameBuf::new(chunk, head, len as usize);
        if from_rx && let Some(mesh) = &self.mesh {
            let owner = match wire::parse(fb.data()) {
                Ok(Some(p)) => self.steer.owner(&p),
                _ => None,
            };
            if let Some(o) = owner
                .map(|o| o as usize)
                .filter(|&o| o != self.me && o < mesh.n)
            {
                let held = &mut self.held[o];
                let lent = held
                    .take()
                    .or_else(|| mesh.lend[o * mesh.n + self.me].pop());
                match lent.filter(|&l| mesh.areas[o].is_chunk(l)) {
                    None => self.steer_drop += 1,
                    Some(l) => {
                        // SAFETY: worker `o` lent chunk `l` of its UMEM to
                        // this worker, which owns it until the push below
                        // succeeds; nobody else touches it meanwhile.
                        let dst = unsafe { mesh.areas[o].chunk_mut(l) };
                        let data = fb.data();
                        match dst.get_mut(head..head + data.len()) {
                            Some(d) => {
                                d.copy_from_slice(data);
                                match mesh.inbox[o].push((l + head as u64, data.len() as u32)) {
                                    Ok(()) => {
                                        self.steered_out += 1;
                                        self.rang[o] = true;
                                    }
                                    Err(_) => {
                                        *held = Some(l);
                                        self.steer_drop += 1;
                                    }
                                }
                            }
                            None => {
                                *held = Some(l);
                                self.steer_drop += 1;
                            }
                        }
                    }
                }
                self.free.push(base);
                return;
            }
        }
        match self.dp.process(&mut fb, now) {
            Verdict::Tx => self.tx.push((base + fb.head() as u64, fb.len() as u32)),
            Verdict::Pass | Verdict::Drop(_) => self.free.push(base),
        }
    }

    /// Processes frames peers handed over (up to one batch).
    fn drain_inbox(&mut self, now: Timestamp) -> usize {
        let Some(mesh) = self.mesh.clone() else {
            return 0;
        };
        let mut n = 0;
        while n < self.batch {
            let Some((addr, len)) = mesh.inbox[self.me].pop() else {
                break;
            };
            self.frame(addr, len, false, now);
            n += 1;
        }
        n
    }

    /// Keeps each peer stocked with chunks it may hand frames over in.
    fn lend(&mut self) {
        let Some(mesh) = &self.mesh else { return };
        for p in (0..mesh.n).filter(|&p| p != self.me) {
            let q = &mesh.lend[self.me * mesh.n + p];
            while q.len() < mesh.lend_depth {
                let Some(b) = self.free.pop() else { return };
                if let Err(b) = q.push(b) {
                    self.free.push(b);
                    break;
                }
            }
        }
    }

    fn flush_tx(&mut self) {
        if self.tx.is_empty() {
            return;
        }
        let mut sent = self.xsk.transmit(&self.tx);
        if sent < self.tx.len() {
            // Ring full: let the kernel drain it once, then try again.
            let r = self.xsk.kick_tx();
            self.wakeup_error(r);
            let done = self.xsk.reap_completions(&mut self.free);
            self.in_flight = self.in_flight.saturating_sub(done);
            sent += self.xsk.transmit(&self.tx[sent..]);
        }
        for &(addr, _) in &self.tx[sent..] {
            self.free.push(chunk_base(addr));
            self.tx_ring_full += 1;
        }
        self.in_flight += sent as u32;
        self.tx.clear();
    }

    fn ring_peers(&mut self) {
        let Some(mesh) = &self.mesh else { return };
        for (p, rang) in self.rang.iter_mut().enumerate() {
            if std::mem::take(rang) {
                mesh.bells[p].ring();
            }
        }
    }

    fn sleep(&mut self) {
        let bell = self
            .mesh
            .as_ref()
            .map(|m| (&m.bells[self.me], &m.inbox[self.me]));
        if let Some((b, inbox)) = bell {
            b.going_to_sleep();
            if !inbox.is_empty() {
                b.woke();
                return;
            }
        }
        let r = self.xsk.poll(bell.map(|(b, _)| b.fd()), IDLE_POLL_MS);
        if let Some((b, _)) = bell {
            b.woke();
        }
        self.wakeup_error(r);
    }

    /// Copies the socket's drop statistics (a getsockopt: not per batch).
    fn kernel_stats(&self) {
        match self.xsk.statistics() {
            Ok(st) => {
                let w = &self.counters;
                w.kernel_rx_dropped
                    .store(st.rx_dropped + st.rx_ring_full, Ordering::Relaxed);
                w.kernel_invalid_descs
                    .store(st.rx_invalid_descs + st.tx_invalid_descs, Ordering::Relaxed);
            }
            Err(e) => log::warn!("queue {}: socket statistics: {e}", self.xsk.queue()),
        }
    }

    fn publish(&self) {
        let c = &self.dp.counters;
        let w = &self.counters;
        w.rx.store(c.rx, Ordering::Relaxed);
        w.tx.store(c.tx, Ordering::Relaxed);
        w.pass.store(c.pass, Ordering::Relaxed);
        w.drop.store(c.drop, Ordering::Relaxed);
        w.steered_out.store(self.steered_out, Ordering::Relaxed);
        w.steer_drop.store(self.steer_drop, Ordering::Relaxed);
        w.tx_ring_full.store(self.tx_ring_full, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use etherparse::PacketBuilder;
    use rustc_hash::FxHashMap;

    use super::*;
    use crate::dataplane::DropReason;
    use crate::dataplane::Snapshot;

    const OWN: [u8; 6] = [2, 0, 0, 0, 0, 0xd1];
    const RS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];

    fn dr_plane() -> Dataplane {
        let cfg = crate::config::parse_str(
            "[[virtual_server]]\naddress = \"198.18.0.100:80\"\nprotocol = \"TCP\"\n\
             lb_algo = \"rr\"\nlb_kind = \"DR\"\n\
             [[virtual_server.real_server]]\naddress = \"198.18.1.11:80\"\n",
            "t.toml",
        )
        .unwrap();
        cfg.dataplane(cfg.dataplane_config())
    }

    fn syn(sport: u16) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xc1], OWN)
            .ipv4([198, 18, 5, 1], [198, 18, 0, 100], 64)
            .tcp(sport, 80, 1, 1000)
            .syn()
            .write(&mut v, &[])
            .unwrap();
        v
    }

    fn process(dp: &mut Dataplane, f: &[u8]) -> (Verdict, Vec<u8>) {
        let mut buf = f.to_vec();
        let mut fb = FrameBuf::new(&mut buf, 0, f.len());
        let v = dp.process(&mut fb, Timestamp::from_secs(1));
        (v, fb.data().to_vec())
    }

    #[test]
    fn a_snapshot_supplies_next_hops_and_the_source_mac() {
        let mut dp = dr_plane();
        assert_eq!(
            process(&mut dp, &syn(1000)).0,
            Verdict::Drop(DropReason::NoNextHop),
            "no MAC known for the real server yet"
        );
        let mut nb = FxHashMap::default();
        nb.insert("198.18.1.11".parse::<IpAddr>().unwrap(), RS_MAC);
        let shared = Shared::new(Snapshot::default());
        shared.publish(Snapshot {
            neighbours: Arc::new(nb),
            own_mac: OWN,
            own_addrs: Arc::new(vec!["198.18.0.1".parse().unwrap()]),
            ..Snapshot::default()
        });
        dp.apply_snapshot(&shared.load());
        assert_eq!(dp.own_mac(), OWN);
        let (v, out) = process(&mut dp, &syn(1001));
        assert_eq!(v, Verdict::Tx);
        assert_eq!(&out[0..6], &RS_MAC);
        assert_eq!(&out[6..12], &OWN);
        assert_eq!(shared.generation(), 1);
    }

    #[test]
    fn next_hops_follow_both_new_servers_and_new_neighbour_macs() {
        let mut dp = dr_plane();
        let snap = |mac: [u8; 6]| {
            let mut nb = FxHashMap::default();
            nb.insert("198.18.1.11".parse::<IpAddr>().unwrap(), RS_MAC);
            nb.insert("198.18.1.12".parse::<IpAddr>().unwrap(), mac);
            Snapshot {
                neighbours: Arc::new(nb),
                own_mac: OWN,
                ..Snapshot::default()
            }
        };
        dp.apply_snapshot(&snap([2, 0, 0, 0, 0, 0x12]));
        // A second server added afterwards (lvsadm -a) finds its MAC in the
        // neighbours already known.
        use crate::service::{DestSpec, FwdMethod, Protocol, ServiceKey, ServiceSpec};
        let key = ServiceKey {
            proto: Protocol::Tcp,
            addr: "198.18.0.100".parse().unwrap(),
            port: 80,
        };
        let d = |a: &str| DestSpec::new(a.parse().unwrap(), 80, FwdMethod::Route);
        let spec = ServiceSpec::new(
            key,
            crate::sched::SchedKind::Rr,
            vec![d("198.18.1.11"), d("198.18.1.12")],
        );
        dp.apply_services(&[spec]);
        let mut macs = std::collections::BTreeSet::new();
        for sport in 2000..2004 {
            let (v, out) = process(&mut dp, &syn(sport));
            assert_eq!(v, Verdict::Tx);
            macs.insert(out[0..6].to_vec());
        }
        assert_eq!(macs.len(), 2, "rr over both servers: {macs:?}");
        // The server's MAC changes (ARP): the established connections follow.
        dp.apply_snapshot(&snap([2, 0, 0, 0, 0, 0x99]));
        let mut macs = std::collections::BTreeSet::new();
        for sport in 2000..2004 {
            let (v, out) = process(&mut dp, &syn(sport));
            assert_eq!(v, Verdict::Tx);
            macs.insert(out[0..6].to_vec());
        }
        assert!(macs.contains(&vec![2, 0, 0, 0, 0, 0x99]), "{macs:?}");
        assert!(!macs.contains(&vec![2, 0, 0, 0, 0, 0x12]), "{macs:?}");
    }

    #[test]
    fn an_all_zero_mac_keeps_the_configured_one() {
        let mut dp = dr_plane();
        let before = dp.own_mac();
        dp.apply_snapshot(&Snapshot::default());
        assert_eq!(dp.own_mac(), before);
        assert_ne!(before, [0; 6]);
    }

    fn cfg(queues: Vec<u32>, frames: u32, batch: usize) -> EngineConfig {
        EngineConfig {
            // Never reached: every case fails validation first.
            ifname: "lfnone0".into(),
            queues,
            cores: vec![],
            zero_copy: ZeroCopy::Off,
            frames_per_queue: frames,
            batch,
            idle_spin: DEFAULT_IDLE_SPIN,
        }
    }

    fn start_err(c: &EngineConfig, planes: usize) -> String {
        let dps = (0..planes).map(|_| dr_plane()).collect();
        let shared = Shared::new(Snapshot::default());
        Engine::start_with(c, &mut |_, _| Ok(()), shared, dps)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn start_rejects_inconsistent_settings() {
        assert!(start_err(&cfg(vec![], 4096, 64), 0).contains("no RX queue"));
        assert!(start_err(&cfg(vec![0, 1], 4096, 64), 1).contains("1 data planes for 2 queues"));
        assert!(start_err(&cfg(vec![0, 0], 4096, 64), 2).contains("twice"));
        assert!(start_err(&cfg(vec![0], 4096, 0), 1).contains("batch"));
        assert!(start_err(&cfg(vec![0, 1], 256, 64), 2).contains("too few"));
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_now();
        std::thread::sleep(Duration::from_millis(2));
        let b = monotonic_now();
        assert!(b.since(a) >= Duration::from_millis(2), "{a:?} {b:?}");
    }
}
