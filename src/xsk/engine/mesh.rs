//! The cross-worker mesh of a multi-queue engine: per worker an inbox of
//! frames handed to it to process and an outbox of frames handed to it to
//! send (out of a NIC the sender has no socket on), per ordered worker pair
//! a queue of frames lent for the hand-over, and per worker a doorbell to
//! wake it (module doc of [`super`], "Several queues" and "NICs with
//! different queue counts").

use anyhow::Context;
use crossbeam::queue::ArrayQueue;

use super::worker::Worker;
use crate::dataplane::Verdict;
use crate::dataplane::reasm::{SLOTS, Whole};
use crate::dest::NicId;
use crate::time::Timestamp;
use crate::wire;
use crate::xsk::afxdp::{Doorbell, FrameDesc, WorkerUmem};
use crate::xsk::steer::SteerMap;

/// What the workers of a multi-queue engine share.
pub(super) struct Mesh {
    pub(super) n: usize,
    /// Per worker: descriptors (in its own UMEM) of frames handed to it,
    /// with the NIC each arrived on.
    pub(super) inbox: Vec<ArrayQueue<(FrameDesc, NicId)>>,
    /// Per worker: descriptors (in its own UMEM) of finished frames to
    /// transmit, with the NIC each leaves by (one it has a socket on).
    pub(super) outbox: Vec<ArrayQueue<(FrameDesc, NicId)>>,
    /// `has_nic[w][nic]`: worker `w` has a socket on NIC `nic`.
    has_nic: Vec<Vec<bool>>,
    /// `lend[owner * n + borrower]`: empty frames of `owner`'s UMEM that
    /// `borrower` may fill.
    lend: Vec<ArrayQueue<FrameDesc>>,
    /// How many frames a worker keeps lent to each peer.
    pub(super) lend_depth: usize,
    umems: Vec<WorkerUmem>,
    pub(super) bells: Vec<Doorbell>,
    /// Per worker: whole datagrams another worker reassembled whose flow
    /// it owns, with the NIC their last fragment came in on and the worker
    /// whose reassembly buffer they are in (too big for a UMEM frame, so
    /// the buffer itself moves: a pointer, no copy, no allocation).
    pub(super) wholes: Vec<ArrayQueue<(Whole, NicId, usize)>>,
    /// Per worker: its reassembly buffers coming back from the owners.
    returns: Vec<ArrayQueue<Whole>>,
}

impl Mesh {
    /// The mesh between the workers owning `umems`, one each; `has_nic`
    /// says which NICs each has a socket on.
    pub(super) fn new(
        batch: usize,
        frames_per_queue: u32,
        umems: &[WorkerUmem],
        has_nic: Vec<Vec<bool>>,
    ) -> anyhow::Result<Mesh> {
        let n = umems.len();
        let lend_depth = (2 * batch).min(frames_per_queue as usize / (2 * n));
        let mut bells = Vec::with_capacity(n);
        for _ in 0..n {
            bells.push(Doorbell::new().context("eventfd")?);
        }
        Ok(Mesh {
            n,
            inbox: (0..n)
                .map(|_| ArrayQueue::new((4 * batch).max(256)))
                .collect(),
            outbox: (0..n)
                .map(|_| ArrayQueue::new((4 * batch).max(256)))
                .collect(),
            has_nic,
            lend: (0..n * n)
                .map(|_| ArrayQueue::new(lend_depth.max(1)))
                .collect(),
            lend_depth,
            umems: umems.to_vec(),
            bells,
            // Room for every buffer of every worker: a push never fails.
            wholes: (0..n).map(|_| ArrayQueue::new(SLOTS * n)).collect(),
            returns: (0..n).map(|_| ArrayQueue::new(SLOTS)).collect(),
        })
    }

    /// The worker other than `me` that owns the connection of the frame
    /// `data`, if it is another one.
    #[inline]
    pub(super) fn elsewhere(&self, steer: &SteerMap, me: usize, data: &[u8]) -> Option<usize> {
        let owner = match wire::parse(data) {
            Ok(Some(p)) => steer.owner(&p),
            _ => None,
        };
        owner.map(|o| o as usize).filter(|&o| o != me && o < self.n)
    }

    /// The worker that sends, for worker `me`, the frames it routes out of
    /// NIC `nic` when `me` has no socket on it: the workers that have one
    /// take them in turn by worker index (`me` modulo their number), so
    /// that the load of the workers without spreads over those with.
    /// `None` when `me` has a socket on it (or no worker has).
    pub(super) fn egress_peer(&self, me: usize, nic: usize) -> Option<usize> {
        if self.has_nic.get(me)?.get(nic).copied().unwrap_or(false) {
            return None;
        }
        let with: Vec<usize> = (0..self.n)
            .filter(|&w| self.has_nic[w].get(nic).copied().unwrap_or(false))
            .collect();
        (!with.is_empty()).then(|| with[me % with.len()])
    }

    /// Hands the frame `data` over from worker `me` to worker `o`: copies
    /// it into a frame `o` lent to `me` (`held`, the one kept from a failed
    /// hand-over, first) and pushes that, with `nic`, onto `o`'s inbox
    /// (`send` false: `o` processes it as received on `nic`) or its outbox
    /// (`send` true: `o` transmits it out of `nic`). False when there is no
    /// lent frame, the frame does not fit or the box is full; a lent frame
    /// then stays in `held`.
    #[inline]
    pub(super) fn hand_over(
        &self,
        me: usize,
        o: usize,
        held: &mut Option<FrameDesc>,
        (nic, send): (NicId, bool),
        data: &[u8],
    ) -> bool {
        let Some(mut l) = held.take().or_else(|| self.lend[o * self.n + me].pop()) else {
            return false;
        };
        // SAFETY: worker `o` lent frame `l` of its UMEM to this worker,
        // which owns it until the push below succeeds; nobody else touches
        // it meanwhile.
        let Some(mut dst) = (unsafe { self.umems[o].frame_mut(&mut l) }) else {
            debug_assert!(false, "lent frame outside the lender's UMEM");
            return false;
        };
        let copied = match dst.buf().get_mut(..data.len()) {
            Some(d) => {
                d.copy_from_slice(data);
                true
            }
            None => false,
        };
        dst.finish(0, if copied { data.len() } else { 0 });
        let to = if send {
            &self.outbox[o]
        } else {
            &self.inbox[o]
        };
        let pushed = copied && to.push((l, nic)).is_ok();
        if !pushed {
            *held = Some(l);
        }
        pushed
    }
}

/// A worker's side of the hand-overs: what it keeps per peer, and its
/// counts.
pub(super) struct Handed {
    /// Per peer: a frame it lent that this worker took but could not hand
    /// over (full box); used first next time.
    held: Vec<Option<FrameDesc>>,
    /// Per peer: frames were pushed to one of its boxes this round.
    rang: Vec<bool>,
    /// Frames handed over (to be processed or sent by a peer).
    pub(super) out: u64,
    /// Frames that found no lent frame or a full box (dropped).
    pub(super) drop: u64,
}

impl Handed {
    pub(super) fn new(peers: usize) -> Handed {
        Handed {
            held: vec![None; peers],
            rang: vec![false; peers],
            out: 0,
            drop: 0,
        }
    }

    /// [`Mesh::hand_over`] of `data` from `me` to `o`, counted.
    #[inline]
    pub(super) fn give(
        &mut self,
        mesh: &Mesh,
        me: usize,
        o: usize,
        to: (NicId, bool),
        data: &[u8],
    ) {
        if mesh.hand_over(me, o, &mut self.held[o], to, data) {
            self.out += 1;
            self.rang[o] = true;
        } else {
            self.drop += 1;
        }
    }
}

impl Worker {
    /// The datagram the last fragment completed (the data plane parks it
    /// when there are several workers): processed by the worker that owns
    /// its flow, as any other frame of that flow, here or handed over.
    #[cold]
    pub(super) fn route_parked(&mut self, nic: NicId, now: Timestamp) {
        let o = match (&self.mesh, self.dp.parked()) {
            (Some(mesh), Some(f)) => mesh.elsewhere(&self.steer, self.me, f),
            _ => None,
        };
        match (o, &self.mesh) {
            (Some(o), Some(mesh)) => {
                let Some(w) = self.dp.take_parked() else {
                    return;
                };
                match mesh.wholes[o].push((w, nic, self.me)) {
                    Ok(()) => {
                        self.handed.out += 1;
                        self.handed.rang[o] = true;
                    }
                    Err((w, _, _)) => {
                        self.dp.give_back(w);
                        self.handed.drop += 1;
                    }
                }
            }
            _ => {
                self.dp.process_parked(now);
            }
        }
    }

    /// Processes the whole datagrams peers reassembled for flows this
    /// worker owns, sends what they turn into and returns the buffers;
    /// takes back its own lent buffers. Returns how many it processed.
    pub(super) fn drain_wholes(&mut self, now: Timestamp) -> usize {
        let Some(mesh) = self.mesh.clone() else {
            return 0;
        };
        while let Some(w) = mesh.returns[self.me].pop() {
            self.dp.give_back(w);
        }
        let mut n = 0;
        while let Some((mut w, nic, from)) = mesh.wholes[self.me].pop() {
            if self.dp.process_whole(&mut w, nic, now) == Verdict::Consumed {
                self.send_extra();
            }
            // Never full: it has room for all of that worker's buffers.
            if mesh.returns[from].push(w).is_ok() {
                self.handed.rang[from] = true;
            }
            n += 1;
        }
        n
    }

    /// Processes frames peers handed over (up to one batch).
    pub(super) fn drain_inbox(&mut self, now: Timestamp) -> usize {
        let Some(mesh) = self.mesh.clone() else {
            return 0;
        };
        let mut n = self.drain_wholes(now);
        while n < self.batch {
            let Some((d, nic)) = mesh.inbox[self.me].pop() else {
                break;
            };
            self.frame(d, nic, false, now);
            n += 1;
        }
        n
    }

    /// Queues the frames peers handed over for sending (up to one batch)
    /// on the NICs they leave by.
    pub(super) fn drain_outbox(&mut self) -> usize {
        let Some(mesh) = self.mesh.clone() else {
            return 0;
        };
        let mut n = 0;
        while n < self.batch {
            let Some((d, nic)) = mesh.outbox[self.me].pop() else {
                break;
            };
            self.queue_tx(d, nic);
            n += 1;
        }
        n
    }

    /// Keeps each peer stocked with frames it may hand frames over in.
    pub(super) fn lend(&mut self) {
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

    /// Wakes the peers this round handed frames to.
    pub(super) fn ring_peers(&mut self) {
        let Some(mesh) = &self.mesh else { return };
        for (p, rang) in self.handed.rang.iter_mut().enumerate() {
            if std::mem::take(rang) {
                mesh.bells[p].ring();
            }
        }
    }
}
