//! One worker's round: snapshot sync, timers and queries at the batch
//! boundary; completions, lending and refill; RX through the data plane
//! (or over to the owner worker) to TX; counters; the idle policy (module
//! doc of [`super`], "A worker's round").

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use crossbeam::channel;

use super::mesh::{Handed, Mesh};
use super::monotonic_now;
use super::rounds::{self, Phase, RoundStats};
use crate::conn::SyncApplied;
use crate::dataplane::query::{self, Query, Reply};
use crate::dataplane::{Dataplane, Verdict};
use crate::dest::NicId;
use crate::time::Timestamp;
use crate::wire::FrameBuf;
use crate::xsk::afxdp::{FrameDesc, MAX_POLL_FDS, WorkerUmem, Xsk, poll_readable};
use crate::xsk::kport::KernelQueue;
use crate::xsk::shared::{SYNC_BACKUP, SYNC_MASTER, Shared, WorkerCounters};
use crate::xsk::steer::SteerMap;

/// Longest sleep of an idle worker: bounds how late timers run and how
/// long `stop` waits.
const IDLE_POLL_MS: i32 = 50;
/// Most frames of the pool kept back from the fill rings for frames the
/// data plane sends beyond the one it received (see `Worker::new`).
const EXTRA_RESERVE: u32 = 256;
/// Most connection timers a round runs: a burst of connections that fall
/// due in the same tick is spread over rounds (a few µs each) instead of
/// stalling one round, and every frame behind it, for all of them.
const EXPIRY_BUDGET: usize = 64;
/// How often a worker copies the socket's kernel statistics (and checks
/// its sockets for errors): in the first round without frames after this
/// long, so that these system calls never sit between a burst's receive
/// and its transmit; after [`KERNEL_STATS_LATEST`] whatever the round.
const KERNEL_STATS_EVERY: Duration = Duration::from_secs(1);
const KERNEL_STATS_LATEST: Duration = Duration::from_secs(2);

/// Where a worker's questions come from and its answers (tagged with its
/// index) go.
pub(super) type Questions = (channel::Receiver<Query>, channel::Sender<(usize, Reply)>);

/// A worker's sockets (one per NIC that has its queue, in NIC order, with
/// the NIC's name; `None` for a NIC without it), the UMEM they are all
/// bound from and that UMEM's pool.
pub(super) type WorkerIo = (Vec<Option<(String, Xsk)>>, WorkerUmem, Vec<FrameDesc>);

/// A worker's socket on one NIC, and what it is to send out of it.
struct NicPort {
    /// The NIC's name (for messages).
    name: String,
    xsk: Xsk,
    /// This round's frames for the NIC (from any NIC's RX: one UMEM).
    tx: Vec<FrameDesc>,
    /// Frames on its TX ring not yet completed.
    in_flight: u32,
}

/// One queue's worker: everything it touches per frame is its own.
pub(super) struct Worker {
    pub(super) me: usize,
    /// Its queue of every NIC, by [`NicId`] (`None`: the NIC has no such
    /// queue).
    nics: Vec<Option<NicPort>>,
    /// Per NIC it has no socket on: the peer that sends its frames out of
    /// that NIC ([`Mesh::egress_peer`]).
    egress: Vec<Option<usize>>,
    /// How many frames each NIC's fill ring is kept at: the pool split
    /// evenly (all of it with one NIC).
    fill_quota: u32,
    /// The frames of every socket (shared: all are bound from it).
    umem: WorkerUmem,
    pub(super) dp: Dataplane,
    shared: Arc<Shared>,
    counters: Arc<WorkerCounters>,
    pub(super) batch: usize,
    /// Frames this worker owns and is not using (capacity: every chunk).
    pub(super) free: Vec<FrameDesc>,
    /// The RX batch (`batch` descriptors, overwritten by each receive).
    rx: Vec<FrameDesc>,
    seen_generation: Option<u64>,
    pub(super) mesh: Option<Arc<Mesh>>,
    pub(super) steer: SteerMap,
    /// Frames handed to peers, to process or to send.
    pub(super) handed: Handed,
    tx_ring_full: u64,
    /// When this worker last had work (`idle_spin` counts from here).
    last_busy: Timestamp,
    /// Start of the last round, when that round had frames: its length is
    /// added to `busy_ns` when the next round starts (no extra clock read).
    busy_round: Option<Timestamp>,
    /// Nanoseconds spent in rounds that had frames.
    busy_ns: u64,
    pub(super) idle_spin_ns: u64,
    last_kernel_stats: Timestamp,
    /// The control thread's questions and where answers go.
    pub(super) queries: Option<Questions>,
    /// Why this worker cannot go on (its socket failed); ends `run`.
    failure: Option<String>,
    /// Its queue of the kernel port: where Pass and Kernel frames go.
    pub(super) kport: Option<KernelQueue>,
    /// Per-phase round timings (`LVSFWD_ROUND_STATS`; `None`: off).
    stats: Option<Box<RoundStats>>,
    /// The connection-sync mode last applied (`SyncLink::mode`).
    sync_mode: u8,
}

/// Most received sync records a worker applies in one round.
const SYNC_APPLY_PER_ROUND: usize = 1024;

impl Worker {
    pub(super) fn new(
        me: usize,
        (xsks, umem, pool): WorkerIo,
        mut dp: Dataplane,
        shared: Arc<Shared>,
        counters: Arc<WorkerCounters>,
        mesh: Option<Arc<Mesh>>,
        batch: usize,
    ) -> Worker {
        let mut free = Vec::with_capacity(umem.frames() as usize);
        free.extend(pool);
        let peers = mesh.as_ref().map_or(1, |m| m.n);
        // With several workers a reassembled datagram goes to its flow's
        // owner (`route_parked`).
        dp.set_park_whole(mesh.is_some());
        // The pool is lent to the fill rings but for a reserve that the
        // frames a received frame turns into (fragments: `send_extra`)
        // take their buffers from; lending everything left them none
        // whenever the free list had just been emptied into the rings.
        // Frames lent to the peers for hand-overs are not in the free list
        // either: the fill rings get what is left after both.
        let reserve = (umem.frames() / 16).min(EXTRA_RESERVE);
        let lent = mesh.as_ref().map_or(0, |m| m.lend_depth * (m.n - 1)) as u32;
        let sockets = xsks.iter().flatten().count().max(1) as u32;
        let fill_quota = umem.frames().saturating_sub(reserve + lent) / sockets;
        let egress = (0..xsks.len())
            .map(|nic| mesh.as_ref().and_then(|m| m.egress_peer(me, nic)))
            .collect();
        let nics = xsks
            .into_iter()
            .map(|x| {
                x.map(|(name, xsk)| NicPort {
                    name,
                    xsk,
                    tx: Vec::with_capacity(2 * batch),
                    in_flight: 0,
                })
            })
            .collect();
        Worker {
            me,
            nics,
            egress,
            fill_quota,
            umem,
            steer: SteerMap::new(&dp.services, peers as u32, dp.hash_seeds().steer),
            dp,
            shared,
            counters,
            batch,
            free,
            rx: vec![FrameDesc::default(); batch],
            seen_generation: None,
            mesh,
            handed: Handed::new(peers),
            tx_ring_full: 0,
            last_busy: Timestamp::ZERO,
            busy_round: None,
            busy_ns: 0,
            idle_spin_ns: 0,
            last_kernel_stats: Timestamp::ZERO,
            queries: None,
            failure: None,
            kport: None,
            stats: rounds::enabled().then(RoundStats::new),
            sync_mode: 0,
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

    /// Serves the queue until the stop flag is set, or until its socket
    /// fails (returned as the second value: the engine reports the worker
    /// dead, [`super::Engine::dead_worker`]).
    pub(super) fn run(mut self, ready: mpsc::Sender<usize>) -> (Dataplane, Option<String>) {
        self.sync_snapshot();
        self.lend();
        self.refill();
        // The receiver may have given up (start failed elsewhere); the stop
        // flag then ends this loop.
        let _ = ready.send(self.me);
        drop(ready);
        while !self.shared.should_stop() && self.failure.is_none() {
            self.round();
        }
        self.publish();
        self.kernel_stats();
        if let Some(st) = &self.stats {
            for l in st.report(&format!("worker {}", self.me)) {
                log::warn!("{l}");
            }
        }
        (self.dp, self.failure)
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
                    self.steer =
                        SteerMap::new(&self.dp.services, m.n as u32, self.dp.hash_seeds().steer);
                }
            }
            self.seen_generation = Some(s.generation);
            self.counters
                .applied_generation
                .store(s.generation, Ordering::Release);
        }
    }

    /// Ends phase `p` of the round in the round statistics, if kept.
    #[inline]
    fn phase(&mut self, p: Phase) {
        if let Some(st) = &mut self.stats {
            st.end(p);
        }
    }

    fn round(&mut self) {
        if let Some(st) = &mut self.stats {
            st.start();
        }
        let now = monotonic_now();
        if let Some(t) = self.busy_round.take() {
            self.busy_ns += now.0.saturating_sub(t.0);
        }
        self.sync_snapshot();
        self.phase(Phase::Snapshot);
        let timers_left = self.dp.tick_some(now, EXPIRY_BUDGET);
        if self.dp.extra_len() > 0 {
            // ICMP errors of reassembly timeouts.
            self.send_extra();
        }
        self.sync_in(now);
        self.phase(Phase::Timers);
        self.serve_queries(now);
        self.phase(Phase::Queries);

        self.reap();
        self.lend();
        self.refill();
        for p in self.nics.iter().flatten() {
            if p.xsk.fill_needs_wakeup() {
                wakeup_error(&p.xsk, p.xsk.poll(None, 0));
            }
        }
        self.phase(Phase::Recycle);

        let mut got = 0;
        for nic in 0..self.nics.len() {
            if self.nics[nic].is_some() {
                got += self.receive(nic as NicId, now);
            }
        }
        let handed = self.drain_inbox(now) + self.drain_outbox();
        if self.sync_mode & SYNC_MASTER != 0 {
            self.sync_out();
        }
        self.phase(Phase::Rx);

        self.flush_tx();
        for p in self.nics.iter_mut().flatten() {
            if p.in_flight > 0 {
                let r = p.xsk.drain_tx().map(|_| ());
                wakeup_error(&p.xsk, r);
            }
        }
        self.phase(Phase::Tx);
        self.ring_peers();
        self.publish();
        let stats_age = now.since(self.last_kernel_stats);
        if (got + handed == 0 && stats_age >= KERNEL_STATS_EVERY)
            || stats_age >= KERNEL_STATS_LATEST
        {
            self.last_kernel_stats = now;
            self.kernel_stats();
            self.check_socket();
        }
        self.phase(Phase::Publish);

        if got + handed > 0 || timers_left {
            self.last_busy = now;
            self.busy_round = Some(now);
        } else if now.0.saturating_sub(self.last_busy.0) >= self.idle_spin_ns {
            self.sleep();
            self.phase(Phase::Sleep);
            // Whatever woke it (frames, a peer, the timeout) starts a new
            // spin.
            self.last_busy = monotonic_now();
        }
    }

    /// Connection sync at the start of a round: follows the mode the
    /// control side set and applies received records (bounded), passing
    /// on those whose flow another worker owns.
    fn sync_in(&mut self, now: Timestamp) {
        let link = &self.shared.sync;
        let mode = link.mode.load(Ordering::Relaxed);
        if mode != self.sync_mode {
            self.sync_mode = mode;
            self.dp
                .set_sync_mode(mode & SYNC_MASTER != 0, mode & SYNC_BACKUP != 0);
        }
        if mode & SYNC_BACKUP == 0 {
            return;
        }
        let Some(q) = link.inbound.get().and_then(|q| q.get(self.me)) else {
            return;
        };
        for _ in 0..SYNC_APPLY_PER_ROUND {
            let Some(r) = q.pop() else {
                break;
            };
            if self.mesh.is_some() {
                // FULLNAT: a reply stub here first (`xsk::sync_steer`).
                let hop = crate::xsk::sync_steer::next_hop(&r, self.me, &self.steer);
                if let Some(o) = hop.stub_for
                    && !self.dp.stub_synced(&r, o, now)
                {
                    link.refused.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(owner) = hop.forward {
                    link.to_worker(owner, r);
                    continue;
                }
            }
            let c = match self.dp.apply_synced(&r, now) {
                SyncApplied::Created => &link.created,
                SyncApplied::Updated | SyncApplied::Ignored => &link.updated,
                SyncApplied::CreatedUnbound => &link.no_dest,
                SyncApplied::TableFull => &link.refused,
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands the records the data plane decided to sync to the sender; a
    /// full queue drops them (counted).
    fn sync_out(&mut self) {
        let link = &self.shared.sync;
        let mut dropped = 0;
        for r in self.dp.drain_sync() {
            if link.out.push(r).is_err() {
                dropped += 1;
            }
        }
        if dropped > 0 {
            link.out_drops.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// One RX batch of NIC `nic` through the data plane. Returns how many
    /// frames it had.
    fn receive(&mut self, nic: NicId, now: Timestamp) -> usize {
        let Some(p) = &mut self.nics[usize::from(nic)] else {
            return 0;
        };
        let got = p.xsk.receive(&mut self.rx);
        // Software pipelining over the batch (crate::hint::pipeline): while
        // a frame is processed, the headers, connection index slots and
        // connection entry of frames further on are prefetched.
        crate::hint::pipeline(&mut RxBatch { w: self, nic, now }, got);
        got
    }

    /// Tops every NIC's fill ring up to its share of the pool.
    fn refill(&mut self) {
        for p in self.nics.iter_mut().flatten() {
            p.xsk.refill_to(&mut self.free, self.fill_quota);
        }
    }

    /// The bytes of a received frame not yet processed, read only to
    /// prefetch for it; `None` for a descriptor outside the UMEM.
    #[inline]
    fn peek(&self, d: &FrameDesc) -> Option<&[u8]> {
        // SAFETY: the frame came off this worker's RX ring and is not yet
        // processed: this worker owns it and holds no mutable view of it
        // while the returned one lives (it dies before `frame` runs).
        unsafe { self.umem.peek(d) }
    }

    /// One frame `d` (owned by this worker) received on NIC `nic`, from its
    /// RX ring or its inbox.
    pub(super) fn frame(&mut self, mut d: FrameDesc, nic: NicId, from_rx: bool, now: Timestamp) {
        // SAFETY: the frame came off this worker's RX ring or inbox, so it
        // owns it (afxdp module doc) until it is queued for TX or recycled
        // below; no other view of it exists.
        let Some(mut f) = (unsafe { self.umem.frame_mut(&mut d) }) else {
            // Only the kernel and peers write descriptors, both with our
            // frames; never index memory on a bad one.
            debug_assert!(false, "descriptor outside the UMEM: {:#x}", d.addr());
            return;
        };
        let len = f.len();
        // The buffer starts at the packet, with the rest of the chunk as
        // tailroom: growing at the front shifts the packet (FrameBuf).
        let mut fb = FrameBuf::new(f.buf(), 0, len);
        if from_rx
            && let Some(mesh) = &self.mesh
            && let Some(o) = mesh.elsewhere(&self.steer, self.me, fb.data())
        {
            self.handed.give(mesh, self.me, o, (nic, false), fb.data());
            self.free.push(d);
            return;
        }
        match self.dp.process_on(&mut fb, nic, now) {
            Verdict::Tx(out) => {
                if let Some(&Some(o)) = self.egress.get(usize::from(out))
                    && let Some(mesh) = &self.mesh
                {
                    // No socket on that NIC: a peer with one sends a copy.
                    self.handed.give(mesh, self.me, o, (out, true), fb.data());
                    self.free.push(d);
                    return;
                }
                let (head, len) = (fb.head(), fb.len());
                f.finish(head, len);
                self.queue_tx(d, out);
            }
            Verdict::Pass | Verdict::Kernel(_) => {
                if let Some(k) = &mut self.kport {
                    k.give(fb.data_mut());
                }
                self.free.push(d);
            }
            Verdict::Drop(_) => self.free.push(d),
            Verdict::Consumed => {
                self.free.push(d);
                if self.dp.parked().is_some() {
                    self.route_parked(nic, now);
                }
                self.send_extra();
            }
            // A reply of a synced FULLNAT conn another worker holds: the
            // data plane found its stub here, the frame is untouched.
            Verdict::HandOver(o) => match &self.mesh {
                Some(mesh) if o as usize != self.me && (o as usize) < mesh.n => {
                    self.handed
                        .give(mesh, self.me, o as usize, (nic, false), fb.data());
                    self.free.push(d);
                }
                _ => {
                    self.dp.count_not_handed();
                    if let Some(k) = &mut self.kport {
                        k.give(fb.data_mut());
                    }
                    self.free.push(d);
                }
            },
        }
    }

    /// Copies the data plane's extra frames (fragments) into free frames
    /// of the pool and queues them for TX; a full TX queue is flushed
    /// first, so nothing grows. Frames without a free buffer are counted
    /// with the ring-full drops.
    #[cold]
    pub(super) fn send_extra(&mut self) {
        for i in 0..self.dp.extra_len() {
            let Some((data, out)) = self.dp.extra_mut(i) else {
                break;
            };
            if out == crate::dataplane::TO_KERNEL {
                if let Some(k) = &mut self.kport {
                    k.give(data);
                }
                continue;
            }
            let data: &[u8] = data;
            if let Some(&Some(o)) = self.egress.get(usize::from(out))
                && let Some(mesh) = &self.mesh
            {
                self.handed.give(mesh, self.me, o, (out, true), data);
                continue;
            }
            let Some(Some(p)) = self.nics.get_mut(usize::from(out)) else {
                debug_assert!(false, "no NIC {out}");
                continue;
            };
            if p.tx.len() == p.tx.capacity() {
                flush_port(p, &mut self.free, &mut self.tx_ring_full);
            }
            let Some(mut d) = self.free.pop() else {
                self.tx_ring_full += 1;
                continue;
            };
            // SAFETY: `d` came off this worker's free list: it owns the
            // frame and no other view of it exists.
            let Some(mut f) = (unsafe { self.umem.frame_mut(&mut d) }) else {
                debug_assert!(false, "descriptor outside the UMEM");
                continue;
            };
            let buf = f.buf();
            let Some(dst) = buf.get_mut(..data.len()) else {
                self.tx_ring_full += 1;
                self.free.push(d);
                continue;
            };
            dst.copy_from_slice(data);
            f.finish(0, data.len());
            p.tx.push(d);
        }
        self.dp.clear_extra();
    }

    /// Queues the finished frame `d` for transmission out of NIC `nic`
    /// (one this worker has a socket on), flushing that NIC's queue first
    /// when it is full (nothing grows).
    pub(super) fn queue_tx(&mut self, d: FrameDesc, nic: NicId) {
        match self.nics.get_mut(usize::from(nic)) {
            Some(Some(p)) => {
                if p.tx.len() == p.tx.capacity() {
                    flush_port(p, &mut self.free, &mut self.tx_ring_full);
                }
                p.tx.push(d);
            }
            _ => {
                // The data plane only names NICs of its snapshot, which are
                // the engine's, and peers only hand over for NICs this
                // worker has a socket on.
                debug_assert!(false, "no socket on NIC {nic}");
                self.free.push(d);
            }
        }
    }

    /// Takes completed TX frames of every NIC back onto the free list.
    #[inline]
    fn reap(&mut self) {
        for p in self.nics.iter_mut().flatten() {
            let done = p.xsk.reap_completions(&mut self.free);
            p.in_flight = p.in_flight.saturating_sub(done);
        }
    }

    fn flush_tx(&mut self) {
        for p in self.nics.iter_mut().flatten() {
            flush_port(p, &mut self.free, &mut self.tx_ring_full);
        }
    }

    fn sleep(&mut self) {
        let bell = self.mesh.as_ref().map(|m| {
            (
                &m.bells[self.me],
                &m.inbox[self.me],
                &m.wholes[self.me],
                &m.outbox[self.me],
            )
        });
        if let Some((b, inbox, wholes, outbox)) = bell {
            b.going_to_sleep();
            if !inbox.is_empty() || !wholes.is_empty() || !outbox.is_empty() {
                b.woke();
                return;
            }
        }
        // Every NIC's socket and the doorbell, without allocating.
        let mut fds = [-1; MAX_POLL_FDS];
        let mut n = 0;
        for (slot, p) in fds.iter_mut().zip(self.nics.iter().flatten()) {
            *slot = p.xsk.fd();
            n += 1;
        }
        if let Some((b, _, _, _)) = bell
            && let Some(slot) = fds.get_mut(n)
        {
            *slot = b.fd();
            n += 1;
        }
        let r = poll_readable(&fds[..n], IDLE_POLL_MS);
        if let Some((b, _, _, _)) = bell {
            b.woke();
        }
        if let Some(p) = self.nics.iter().flatten().next() {
            wakeup_error(&p.xsk, r);
        }
    }

    /// Copies the sockets' drop statistics, summed over the NICs (a
    /// getsockopt each: not per batch).
    fn kernel_stats(&self) {
        let (mut dropped, mut invalid) = (0, 0);
        for p in self.nics.iter().flatten() {
            match p.xsk.statistics() {
                Ok(st) => {
                    dropped += st.rx_dropped + st.rx_ring_full;
                    invalid += st.rx_invalid_descs + st.tx_invalid_descs;
                }
                Err(e) => log::warn!("queue {}: socket statistics: {e}", p.xsk.queue()),
            }
        }
        let w = &self.counters;
        w.kernel_rx_dropped.store(dropped, Ordering::Relaxed);
        w.kernel_invalid_descs.store(invalid, Ordering::Relaxed);
    }

    /// A socket with a pending error is one the kernel gave up on (its
    /// interface was unregistered: `ENETDOWN`, and it is unbound for good);
    /// serving on would keep a worker that never receives again.
    fn check_socket(&mut self) {
        for p in self.nics.iter().flatten() {
            match p.xsk.take_error() {
                Ok(None) => {}
                Ok(Some(e)) => {
                    self.failure = Some(format!(
                        "{} queue {}: the AF_XDP socket failed: {e}",
                        p.name,
                        p.xsk.queue()
                    ));
                    return;
                }
                Err(e) => log::warn!("queue {}: socket error state: {e}", p.xsk.queue()),
            }
        }
    }

    fn publish(&self) {
        let c = &self.dp.counters;
        let w = &self.counters;
        w.rx.store(c.rx, Ordering::Relaxed);
        w.tx.store(c.tx, Ordering::Relaxed);
        w.pass.store(c.pass, Ordering::Relaxed);
        w.drop.store(c.drop, Ordering::Relaxed);
        w.steered_out.store(self.handed.out, Ordering::Relaxed);
        w.steer_drop.store(self.handed.drop, Ordering::Relaxed);
        w.tx_ring_full.store(self.tx_ring_full, Ordering::Relaxed);
        w.busy_ns.store(self.busy_ns, Ordering::Relaxed);
    }
}

/// Puts one NIC's queued frames on its TX ring.
fn flush_port(p: &mut NicPort, free: &mut Vec<FrameDesc>, tx_ring_full: &mut u64) {
    if p.tx.is_empty() {
        return;
    }
    let mut sent = p.xsk.transmit(&p.tx);
    if sent < p.tx.len() {
        // Ring full: let the kernel drain it once, then try again.
        let r = p.xsk.kick_tx();
        wakeup_error(&p.xsk, r);
        let done = p.xsk.reap_completions(free);
        p.in_flight = p.in_flight.saturating_sub(done);
        sent += p.xsk.transmit(&p.tx[sent..]);
    }
    for &d in &p.tx[sent..] {
        free.push(d);
        *tx_ring_full += 1;
    }
    p.in_flight += sent as u32;
    p.tx.clear();
}

fn wakeup_error(xsk: &Xsk, r: std::io::Result<()>) {
    if let Err(e) = r {
        log::warn!("queue {}: waking the kernel failed: {e}", xsk.queue());
    }
}

/// A received batch (the worker's `rx`, from NIC `nic`) as
/// [`crate::hint::pipeline`] runs it.
struct RxBatch<'a> {
    w: &'a mut Worker,
    nic: NicId,
    now: Timestamp,
}

impl crate::hint::Batch for RxBatch<'_> {
    #[inline(always)]
    fn fetch_item(&self, i: usize) {
        self.w.umem.prefetch(&self.w.rx[i]);
    }

    #[inline(always)]
    fn fetch_slots(&self, i: usize) {
        if let Some(f) = self.w.peek(&self.w.rx[i]) {
            self.w.dp.prefetch_slots(f);
        }
    }

    #[inline(always)]
    fn fetch_entry(&self, i: usize) {
        if let Some(f) = self.w.peek(&self.w.rx[i]) {
            self.w.dp.prefetch_entry(f);
        }
    }

    #[inline(always)]
    fn process(&mut self, i: usize) {
        let d = self.w.rx[i];
        self.w.frame(d, self.nic, true, self.now);
    }
}
