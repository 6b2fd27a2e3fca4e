//! The AF_XDP engine: one pinned worker thread per RX queue, each owning a
//! UMEM ([`WorkerUmem`](super::afxdp::WorkerUmem)) and one AF_XDP socket
//! bound from it on every data-plane NIC that has its queue (queue i of
//! each NIC belongs to worker i: XDP_SHARED_UMEM), running the pure data plane over batches of
//! frames and sending each result out of the NIC the data plane names
//! (`Verdict::Tx(nic)`), with no copy between NICs. The NICs' fill rings
//! share the worker's pool evenly; RX takes a batch from each NIC in turn,
//! and an idle worker sleeps on all its sockets at once.
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
//! 3. receive up to `batch` frames (xsk-rs `FrameDesc`s); each is wrapped as
//!    a [`FrameBuf`](crate::wire::FrameBuf) over its buffer, which starts at
//!    the packet and runs to the end of its chunk (a descriptor's address
//!    cannot move: tunnels grow a frame by shifting it toward the tail), and
//!    handed to `Dataplane::process`. `Tx` queues the descriptor (the frame
//!    moved back to the buffer's start if it no longer begins there) for
//!    transmission; `Pass` and `Kernel` frames are written to the worker's
//!    own queue of the kernel port ([`crate::xsk::kport`], a tap: the
//!    director's stack takes them as if received) and recycled, like `Drop`
//!    (keeping the kernel's own traffic away from the sockets is still the
//!    XDP program's job);
//! 4. transmit the batch; `sendto` only when the TX ring asks for a wakeup,
//!    as often as it takes to drain it (copy mode sends 32 frames a call);
//! 5. publish counters; in a round without frames, about once a second,
//!    copy the sockets' kernel statistics and check them for errors (system
//!    calls kept out of busy rounds). A worker that found nothing to do for
//!    a while sleeps in `poll` (bounded, so timers still run) instead of
//!    spinning.
//!
//! With `LVSFWD_ROUND_STATS=1` in the daemon's environment each worker
//! times its rounds phase by phase and logs the histograms (and its
//! thread's context switches) when it stops: what to look at when the
//! latency tail grows (`rounds`; off by default, nothing per frame).
//!
//! Per frame nothing allocates (all buffers are sized at start) and nothing
//! locks (rings are single-producer/single-consumer, the snapshot is read
//! through `arc_swap`, hand-over queues are lock-free).
//!
//! # Several queues: software steering
//! The NIC's RSS hash puts the client side of a NAT connection and the real
//! server's replies on queues of its choosing, but each worker has its own
//! connection table. Every worker therefore computes, for each received
//! frame, the owner worker of its connection
//! ([`SteerMap`](super::steer::SteerMap): a hash of the client side, the
//! same from both directions; FULLNAT local ports are partitioned per
//! worker, so a reply's destination port names its owner).
//! A frame owned elsewhere is copied, once, into a frame of the owner's
//! UMEM that the owner lent to this worker beforehand (a `FrameDesc`), and
//! that descriptor is pushed onto the owner's inbox; the owner processes it
//! like its own RX and transmits it from its own socket. Per ordered worker
//! pair there is a lock-free queue of lent frames (`crossbeam::queue::ArrayQueue`,
//! refilled by the lender from its free list), and per worker one inbox;
//! a sleeping owner is woken through an eventfd only when it is asleep.
//! A frame that finds no lent chunk or a full inbox is dropped and counted
//! (`steer_drop`). A datagram reassembled from fragments (which RSS keeps
//! on one queue, hashing addresses only) is too big for a frame: the
//! reassembly buffer itself goes to the owner over a per-worker queue of
//! whole datagrams, and back over a per-worker return queue (both sized
//! for every buffer, so neither fills). With one queue none of this exists.
//!
//! # NICs with different queue counts
//! There is one worker per served queue number; worker i binds a socket on
//! queue `queues[i]` of each NIC that has it, all from its one UMEM (a
//! director whose NICs have 4 and 2 queues runs 4 workers: workers 0 and 1
//! have a socket on both NICs, workers 2 and 3 on the first only), so every
//! RX queue of every NIC is served. A frame that a worker routes out of a
//! NIC it has no socket on cannot go on another worker's TX ring (rings are
//! single-producer, and the frame is in the wrong UMEM), so it crosses like
//! a steered frame: copied once into a frame the sending peer lent
//! beforehand, pushed onto that peer's outbox with the NIC, and the peer
//! puts it on its TX ring for that NIC without processing it again. Which
//! peer: the workers with a socket on that NIC take the others in turn
//! (`me` modulo their number). Counted with the steered frames
//! (`steered_out`, `steer_drop`). Frames between NICs both of which the
//! worker has a socket on still move without a copy.
//!
//! # Deliberately not done
//! Per-worker scheduler state is not shared (rr/wrr/lc run per worker, as
//! per-CPU state would); services added while running are steered from the
//! next snapshot on; multi-buffer frames are not enabled.
//!
//! # Layout
//! `lifecycle` starts the workers, waits for them to come up, asks them
//! questions, notices one that died (a caught panic, or a socket the
//! kernel gave up on: [`Engine::dead_worker`]) and stops them; `worker` is one worker's round; `mesh` is
//! what the workers of a multi-queue engine share and how a frame moves to
//! its owner; `rounds` the opt-in round timings.

use crate::time::Timestamp;

mod lifecycle;
mod mesh;
mod rounds;
mod worker;

pub use lifecycle::{Engine, EngineConfig, WorkerDeath, WorkerInfo, keep_off_worker_cores};

pub use super::nic::rx_queue_count;

/// A good `frames_per_queue` (16 MiB of UMEM per queue).
pub const DEFAULT_FRAMES_PER_QUEUE: u32 = 4096;
/// A good `batch`.
pub const DEFAULT_BATCH: usize = 64;

/// Default of lb.toml's `idle_spin_us`: how long a worker keeps polling
/// its rings after the last frame before it sleeps in `poll`. A sleeping
/// worker needs the kernel to wake it (an interrupt, a reschedule: tens of
/// microseconds to milliseconds on a VM) and the frames wait meanwhile;
/// spinning through the gaps between bursts keeps that out of the latency
/// at moderate load, at the price of a busy core for that long after each
/// burst.
pub use crate::config::DEFAULT_IDLE_SPIN;

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

/// Where Linux says whether transparent huge pages are on.
const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// What to log at start about the pages of the workers' connection tables,
/// which ask for huge pages (`crate::hugemem`): whether the kernel gives
/// them. `None` where it has no such setting.
pub fn huge_pages_note() -> Option<(log::Level, String)> {
    thp_note(&std::fs::read_to_string(THP_ENABLED).ok()?)
}

/// [`huge_pages_note`] for the setting's text (`always [madvise] never`:
/// the bracketed word is the mode).
fn thp_note(enabled: &str) -> Option<(log::Level, String)> {
    let (_, rest) = enabled.split_once('[')?;
    let (mode, _) = rest.split_once(']')?;
    Some(if mode == "never" {
        (
            log::Level::Warn,
            format!(
                "transparent huge pages are off ({THP_ENABLED}): the connection tables run \
                 on 4 KiB pages, slower with millions of connections"
            ),
        )
    } else {
        (
            log::Level::Info,
            format!("connection tables on transparent huge pages (mode {mode})"),
        )
    })
}

#[cfg(test)]
mod tests;
