//! What the control thread and the workers share: the published
//! [`Snapshot`] (the data plane's input, see [`crate::dataplane::snapshot`])
//! and each worker's counters.
//!
//! The control thread builds a new immutable [`Snapshot`] whenever something
//! the workers need changes (next-hop MACs learnt from the kernel, the
//! director's own addresses, the service table) and publishes it with one
//! atomic pointer swap. Workers compare [`Snapshot::generation`] at each
//! batch boundary and apply the newer one; reading never blocks the
//! publisher or another reader ([`arc_swap::ArcSwap`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::sync::OnceLock;

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;

use crate::conn::SyncRecord;
use crate::dataplane::Snapshot;

/// Frame counters one worker publishes (relaxed atomics: monotonic
/// counters read for display only).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    pub pass: AtomicU64,
    pub drop: AtomicU64,
    /// Frames handed to the worker that owns their connection, or to one
    /// that sends them out of a NIC this worker has no socket on (NICs
    /// with different queue counts).
    pub steered_out: AtomicU64,
    /// Frames that should have been handed over but the peer had no free
    /// buffer or inbox/outbox room (dropped).
    pub steer_drop: AtomicU64,
    /// Frames the data plane wanted to send but the TX ring was full
    /// (dropped).
    pub tx_ring_full: AtomicU64,
    /// Frames written to the kernel port (`xsk::kport`): `Pass` and
    /// `Kernel` verdicts the director's own stack takes.
    pub to_kernel: AtomicU64,
    /// Frames the kernel port did not take (its queue full, or the write
    /// failed): dropped, never waited for.
    pub kernel_port_drop: AtomicU64,
    /// Frames the kernel dropped on the way to the socket (no fill buffer,
    /// or the RX ring full): the socket's `rx_dropped + rx_ring_full`,
    /// refreshed about once a second and when the worker stops.
    pub kernel_rx_dropped: AtomicU64,
    /// Descriptors the kernel rejected as invalid (RX and TX), same source.
    pub kernel_invalid_descs: AtomicU64,
    /// Nanoseconds the worker spent in rounds that had frames to move (its
    /// busy time; the rest it spun idle or slept).
    pub busy_ns: AtomicU64,
    /// The generation of the last snapshot the worker applied (stored after
    /// applying it, at a batch boundary).
    pub applied_generation: AtomicU64,
}

impl WorkerCounters {
    pub fn load(&self) -> (u64, u64, u64, u64) {
        (
            self.rx.load(Ordering::Relaxed),
            self.tx.load(Ordering::Relaxed),
            self.pass.load(Ordering::Relaxed),
            self.drop.load(Ordering::Relaxed),
        )
    }
}

/// State shared by the control thread and every worker.
#[derive(Debug, Default)]
pub struct Shared {
    snapshot: ArcSwap<Snapshot>,
    /// Set once to ask every worker to return.
    pub stop: AtomicBool,
    /// Connection sync's hand-over queues.
    pub sync: SyncLink,
}

/// [`SyncLink::mode`] bits.
pub const SYNC_MASTER: u8 = 1;
pub const SYNC_BACKUP: u8 = 2;
/// Capacity of each sync queue (records; about 100 bytes each).
pub const SYNC_QUEUE: usize = 16384;

/// Connection sync between the workers and the control side's sync
/// threads (`control::sync`), lock-free both ways: workers push the
/// records their data planes decided on onto `out` (a full queue drops
/// and counts, a worker never waits); the backup's receiver pushes
/// received records onto a worker's `inbound` queue, which that worker
/// applies at the start of a round (handing a record on to the worker
/// that owns its flow if it is not its own).
#[derive(Debug)]
pub struct SyncLink {
    /// [`SYNC_MASTER`] | [`SYNC_BACKUP`]; workers follow it at batch
    /// boundaries.
    pub mode: std::sync::atomic::AtomicU8,
    pub out: ArrayQueue<SyncRecord>,
    /// One per worker, made when the engine starts.
    pub inbound: OnceLock<Box<[ArrayQueue<SyncRecord>]>>,
    /// Records dropped because `out` was full.
    pub out_drops: AtomicU64,
    /// Records dropped because a worker's inbound queue was full.
    pub in_drops: AtomicU64,
    /// Records the workers applied, by outcome.
    pub created: AtomicU64,
    pub updated: AtomicU64,
    pub no_dest: AtomicU64,
    pub refused: AtomicU64,
}

impl Default for SyncLink {
    fn default() -> SyncLink {
        SyncLink {
            mode: Default::default(),
            out: ArrayQueue::new(SYNC_QUEUE),
            inbound: OnceLock::new(),
            out_drops: AtomicU64::new(0),
            in_drops: AtomicU64::new(0),
            created: AtomicU64::new(0),
            updated: AtomicU64::new(0),
            no_dest: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }
}

impl SyncLink {
    /// Hands `r` to worker `w` (control side, or a worker passing it on).
    pub fn to_worker(&self, w: usize, r: SyncRecord) -> bool {
        let ok = self
            .inbound
            .get()
            .and_then(|q| q.get(w))
            .is_some_and(|q| q.push(r).is_ok());
        if !ok {
            self.in_drops.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
}

impl Shared {
    pub fn new(first: Snapshot) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(first),
            stop: AtomicBool::new(false),
            sync: SyncLink::default(),
        })
    }

    /// The newest snapshot (lock-free).
    pub fn load(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The newest snapshot's generation, without taking a reference to it
    /// (what workers compare at every batch boundary).
    pub fn generation(&self) -> u64 {
        self.snapshot.load().generation
    }

    /// Publishes `next` with the following generation number, which it
    /// returns.
    pub fn publish(&self, mut next: Snapshot) -> u64 {
        let g = self.snapshot.load().generation + 1;
        next.generation = g;
        self.snapshot.store(Arc::new(next));
        g
    }

    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_bumps_generation_and_readers_see_it() {
        let s = Shared::new(Snapshot::default());
        let before = s.load();
        s.publish(Snapshot {
            own_macs: Arc::new(vec![[2, 0, 0, 0, 0, 9]]),
            ..Snapshot::default()
        });
        let after = s.load();
        assert_eq!(after.generation, before.generation + 1);
        assert_eq!(*after.own_macs, [[2, 0, 0, 0, 0, 9]]);
        assert!(
            before.own_macs.is_empty(),
            "old readers keep their snapshot"
        );
    }
}
