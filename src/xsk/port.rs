//! A bare AF_XDP port for tools: one [`Xsk`] with its free list, behind safe
//! batch methods (receive and decide per frame, write new frames, transmit).
//! The perf harness builds its raw MAC-swapping forwarder (the ceiling of
//! the I/O path) and its traffic tester (generator and sink) on it, so that
//! they move frames exactly as lvsfwd's engine does (same rings, same
//! recycling, same wakeup rules) minus the data plane.
//!
//! Frame ownership follows the rule in [`super::afxdp`]: a frame is either
//! the kernel's (fill or TX ring) or this port's (free list, the batch being
//! received, the frames queued for transmission). A closure passed to
//! [`Port::receive`] or [`Port::send_new`] sees a slice over one frame the
//! port owns, for the duration of the call only. The port is one socket on
//! its own [`WorkerUmem`](super::afxdp::WorkerUmem), the same xsk-rs path
//! as the engine's workers.
//!
//! Invariants: nothing allocates after [`Port::open`] (every buffer is sized
//! for the whole UMEM); chunks never leak: every chunk taken off a ring ends
//! up either on the TX ring or back in its pool. Two pools: chunks below
//! `tx_reserve` only ever carry generated frames, the others only received
//! ones (the fill ring's), so a generator's sending and receiving never
//! starve each other.
//!
//! A port opened with [`Port::open_pair`] has a second socket, on another
//! NIC, bound from the same UMEM: what it receives on the first leaves by
//! the second without a copy (the two-NIC raw forwarder), as lvsfwd's
//! workers move frames between NICs.
//!
//! Deliberately not here: XDP programs (the caller attaches one and points
//! its XSKMAP at [`Port::fd`]), threads, pacing and statistics beyond the
//! kernel's own.

use std::io;
use std::os::fd::RawFd;

use crate::config::ZeroCopy;

use super::afxdp::{BUF_SIZE, BindOptions, FRAME_SIZE, FrameDesc, WorkerUmem, Xsk};

/// What [`Port::open`] needs.
#[derive(Clone, Debug)]
pub struct PortOptions<'a> {
    pub ifname: &'a str,
    pub queue: u32,
    /// UMEM chunks (a power of two >= 64; also every ring's size).
    pub frames: u32,
    pub zero_copy: ZeroCopy,
    /// Most frames received per [`Port::receive`] call.
    pub batch: usize,
    /// Chunks set aside for [`Port::send_new`]: they never go on the fill
    /// ring, so a generator that also receives can neither starve its own
    /// receive side nor be starved by it (0 for a pure forwarder).
    pub tx_reserve: usize,
}

/// One AF_XDP socket (two with [`Port::open_pair`]) and the frames it
/// owns.
pub struct Port {
    xsk: Xsk,
    /// The socket frames leave by when it is not `xsk` (another NIC's
    /// queue, bound from the same UMEM; it receives nothing).
    out: Option<Xsk>,
    umem: WorkerUmem,
    /// Receive pool: chunks at or above `split`, fed to the fill ring.
    free: Vec<FrameDesc>,
    /// Generator pool: chunks below `split`, for [`Port::send_new`].
    tx_free: Vec<FrameDesc>,
    split: usize,
    completed: Vec<FrameDesc>,
    /// The RX batch (`batch` descriptors, overwritten by each receive).
    rx: Vec<FrameDesc>,
    tx: Vec<FrameDesc>,
    in_flight: u32,
    /// Frames that found the TX ring full and were recycled unsent.
    tx_ring_full: u64,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("xsk", &self.xsk)
            .field("free", &self.free.len())
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl Port {
    /// Opens and binds the socket; every chunk starts on the free list
    /// except those [`Port::service`] then puts on the fill ring.
    pub fn open(o: &PortOptions<'_>) -> anyhow::Result<Port> {
        anyhow::ensure!(o.batch > 0, "batch must be at least 1");
        anyhow::ensure!(
            o.tx_reserve + o.batch <= o.frames as usize,
            "a reserve of {} frames plus a batch of {} exceed {} frames",
            o.tx_reserve,
            o.batch,
            o.frames
        );
        let (umem, pool) = WorkerUmem::new(o.frames)?;
        let xsk = umem.bind(&BindOptions {
            ifname: o.ifname,
            queue: o.queue,
            zero_copy: o.zero_copy,
        })?;
        let split = o.tx_reserve * FRAME_SIZE as usize;
        let n = o.frames as usize;
        let (mut free, mut tx_free) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for d in pool {
            if d.addr() < split {
                tx_free.push(d);
            } else {
                free.push(d);
            }
        }
        let mut p = Port {
            xsk,
            out: None,
            umem,
            free,
            tx_free,
            split,
            completed: Vec::with_capacity(n),
            rx: vec![FrameDesc::default(); o.batch],
            tx: Vec::with_capacity(n),
            in_flight: 0,
            tx_ring_full: 0,
        };
        p.service()?;
        Ok(p)
    }

    /// [`Port::open`] on `o.ifname`, plus a socket on queue `o.queue` of
    /// `out_ifname` bound from the same UMEM: frames are received on the
    /// first NIC and every frame [`Port::receive`] or [`Port::send_new`]
    /// queues leaves by the second.
    pub fn open_pair(o: &PortOptions<'_>, out_ifname: &str) -> anyhow::Result<Port> {
        let mut p = Port::open(o)?;
        p.out = Some(p.umem.bind(&BindOptions {
            ifname: out_ifname,
            queue: o.queue,
            zero_copy: o.zero_copy,
        })?);
        Ok(p)
    }

    /// The socket frames are transmitted on.
    #[inline]
    fn tx_xsk(&mut self) -> &mut Xsk {
        self.out.as_mut().unwrap_or(&mut self.xsk)
    }

    pub fn fd(&self) -> RawFd {
        self.xsk.fd()
    }
    pub fn queue(&self) -> u32 {
        self.xsk.queue()
    }
    pub fn is_zero_copy(&self) -> bool {
        self.xsk.is_zero_copy()
    }
    /// The kernel's drop counters for the socket.
    pub fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        self.xsk.statistics()
    }
    /// Frames on the TX ring not yet completed.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }
    /// TX descriptors the kernel has not consumed yet (0 after a
    /// [`Port::flush`] that the kernel kept up with).
    pub fn tx_pending(&mut self) -> u32 {
        self.tx_xsk().tx_pending()
    }
    /// Frames recycled unsent because the TX ring stayed full.
    pub fn tx_ring_full(&self) -> u64 {
        self.tx_ring_full
    }
    /// Largest frame [`Port::send_new`] can write (a frame's buffer: its
    /// chunk minus the XDP headroom).
    pub fn max_frame(&self) -> usize {
        BUF_SIZE
    }

    /// Returns a frame this port owns to the pool it belongs to.
    #[inline]
    fn recycle(&mut self, d: FrameDesc) {
        if d.addr() < self.split {
            self.tx_free.push(d);
        } else {
            self.free.push(d);
        }
    }

    fn reap(&mut self) {
        let done = match &mut self.out {
            Some(x) => x.reap_completions(&mut self.completed),
            None => self.xsk.reap_completions(&mut self.completed),
        };
        self.in_flight = self.in_flight.saturating_sub(done);
        while let Some(d) = self.completed.pop() {
            self.recycle(d);
        }
    }

    /// Ring housekeeping, once per round: completed TX chunks back to their
    /// pool, the fill ring topped up from the receive pool, and the `poll`
    /// the fill ring asks for when it ran dry.
    pub fn service(&mut self) -> io::Result<()> {
        self.reap();
        self.xsk.refill(&mut self.free, 0);
        if self.xsk.fill_needs_wakeup() {
            self.xsk.poll(None, 0)?;
        }
        Ok(())
    }

    /// Takes up to one batch of received frames and calls `f` on each
    /// frame's bytes; `f` returns true to transmit the frame (as it left
    /// it, same length) at the next [`Port::flush`], false to recycle it.
    /// Returns how many frames were received.
    pub fn receive(&mut self, mut f: impl FnMut(&mut [u8]) -> bool) -> usize {
        let got = self.xsk.receive(&mut self.rx);
        for i in 0..got {
            let mut d = self.rx[i];
            // SAFETY: the frame came off this port's RX ring, so the port
            // owns it (afxdp module doc) until it is queued for TX or
            // recycled below; the view dies before either.
            let Some(mut fm) = (unsafe { self.umem.frame_mut(&mut d) }) else {
                // Only the kernel writes RX descriptors; never index memory
                // on a bad one (and never recycle a frame that is not ours).
                debug_assert!(false, "bad RX descriptor {:#x}", d.addr());
                continue;
            };
            let len = fm.len();
            let send = f(&mut fm.buf()[..len]);
            fm.finish(0, len);
            if send {
                self.tx.push(d);
            } else {
                self.recycle(d);
            }
        }
        got
    }

    /// Writes up to `n` new frames, each into a chunk of the generator pool
    /// through `f` (given the whole buffer, [`Port::max_frame`] bytes, it
    /// returns the frame's length; 0 = none), and queues them for the next
    /// [`Port::flush`]. Returns how many were queued (fewer than `n` when
    /// the pool runs out).
    pub fn send_new(&mut self, n: usize, mut f: impl FnMut(&mut [u8]) -> usize) -> usize {
        let mut queued = 0;
        while queued < n {
            let Some(mut d) = self.tx_free.pop() else {
                break;
            };
            // SAFETY: the frame was in this port's generator pool, so the
            // port owns it; the view dies before the frame is queued or
            // freed.
            let Some(mut fm) = (unsafe { self.umem.frame_mut(&mut d) }) else {
                debug_assert!(false, "pool descriptor outside the UMEM");
                continue;
            };
            let len = f(fm.buf());
            fm.finish(0, len);
            if len == 0 {
                self.tx_free.push(d);
                break;
            }
            self.tx.push(d);
            queued += 1;
        }
        queued
    }

    /// Puts the queued frames on the TX ring (letting the kernel drain a
    /// full ring once), recycles the ones that still do not fit, and kicks
    /// the kernel when the ring asks for it. Returns how many were put on
    /// the ring.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut sent = 0;
        let mut res = Ok(());
        if !self.tx.is_empty() {
            let tx = std::mem::take(&mut self.tx);
            sent = self.tx_xsk().transmit(&tx);
            if sent < tx.len() {
                res = self.tx_xsk().kick_tx();
                self.reap();
                sent += self.tx_xsk().transmit(&tx[sent..]);
            }
            self.tx = tx;
            for i in sent..self.tx.len() {
                let d = self.tx[i];
                self.recycle(d);
                self.tx_ring_full += 1;
            }
            self.in_flight += sent as u32;
            self.tx.clear();
        }
        if res.is_ok() && self.in_flight > 0 {
            res = self.tx_xsk().drain_tx().map(|_| ());
        }
        res.map(|()| sent)
    }

    /// Sleeps until a frame arrives or `timeout_ms` passes.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<()> {
        self.xsk.poll(None, timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_rejects_a_reserve_that_leaves_no_room() {
        let e = Port::open(&PortOptions {
            ifname: "lo",
            queue: 0,
            frames: 64,
            zero_copy: ZeroCopy::Off,
            batch: 16,
            tx_reserve: 60,
        })
        .unwrap_err();
        assert!(e.to_string().contains("exceed 64 frames"), "{e}");
        let e = Port::open(&PortOptions {
            ifname: "lfnosuchif0",
            queue: 0,
            frames: 64,
            zero_copy: ZeroCopy::Off,
            batch: 16,
            tx_reserve: 0,
        })
        .unwrap_err();
        assert!(e.to_string().contains("lfnosuchif0"), "{e}");
    }
}
