//! AF_XDP sockets and their UMEMs, on the `xsk-rs` crate.
//!
//! Two types. A [`WorkerUmem`] is one worker's frame memory: an `xsk_rs`
//! [`Umem`] cut into [`FRAME_SIZE`] chunks (aligned mode), handed out once,
//! at creation, as one [`FrameDesc`] per chunk: the worker's pool. An
//! [`Xsk`] is one socket bound from a `WorkerUmem` to one (interface, queue)
//! pair, with that pair's own fill, completion, RX and TX rings. Binding
//! several sockets from one `WorkerUmem` shares the UMEM (XDP_SHARED_UMEM):
//! a frame received on one NIC can be transmitted out of another by moving
//! its descriptor from one socket's RX batch to the other's TX ring, with no
//! copy; it completes on the sending socket's completion ring and goes back
//! to the shared pool. The engine binds one socket per worker today; a
//! multi-NIC director binds one per NIC from the same `WorkerUmem`.
//!
//! Frame ownership (the invariant every `unsafe` block in the shell leans
//! on): a frame is at any time owned by exactly one party: the kernel
//! (between being put on a fill or TX ring and coming back on an RX or
//! completion ring of a socket of the same UMEM), or one worker (its free
//! list, its current batch, or a frame it lent to a peer, which then owns
//! it until it comes back through the peer's inbox). Only the owner looks
//! at a frame's bytes ([`WorkerUmem::frame_mut`], [`WorkerUmem::peek`]),
//! and a descriptor is only ever given to rings of sockets bound from the
//! UMEM it came from.
//!
//! Buffers: `xsk-rs` gives a descriptor's address no setter, so a TX
//! descriptor starts where the kernel put the received packet (or where the
//! pool put the chunk's first packet: [`RX_OFFSET`] into it). A frame's
//! buffer therefore runs from its first byte to the end of its chunk: no
//! headroom, the rest of the chunk as tailroom. Growing at the front
//! (tunnels, ICMP too-big) moves the packet toward the tail inside its own
//! buffer (`wire::FrameBuf::push_front`), and a frame that ends up not
//! starting at its buffer's first byte is moved back before it is queued
//! ([`FrameMut::finish`]).
//!
//! `unsafe` that stays: `xsk-rs`'s ring and frame accessors are `unsafe fn`
//! (their contract is the ownership rule above), and the handful of plain
//! syscalls `xsk-rs` does not wrap (`poll` on two fds, `SO_ERROR`).
//!
//! Deliberately not here: multi-buffer (XDP_USE_SG) frames, unaligned
//! chunks and huge pages; frames larger than a chunk minus the XDP headroom
//! are dropped by the kernel.

use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};

use anyhow::Context;
use nix::sys::eventfd::{EfdFlags, EventFd};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::umem::frame::DataMut;
use xsk_rs::{CompQueue, FillQueue, RxQueue, Socket, TxQueue, Umem};

use crate::config::ZeroCopy;

pub use xsk_rs::FrameDesc;

/// Size of one UMEM chunk (a page: the aligned-mode chunk size must be a
/// power of two, and a page holds any Ethernet frame plus headroom).
pub const FRAME_SIZE: u32 = 4096;
/// Most `sendto` kicks of one [`Xsk::drain_tx`] (a full default ring's
/// worth of 32-frame copy-mode batches).
pub const MAX_TX_KICKS: u32 = 128;
/// Where a packet starts inside its chunk: the kernel's XDP headroom
/// (`XDP_PACKET_HEADROOM`), which is also where the pool's descriptors
/// point (no extra frame headroom is configured).
pub const RX_OFFSET: u32 = 256;
/// Bytes of a frame's buffer: from [`RX_OFFSET`] to the end of the chunk.
pub const BUF_SIZE: usize = (FRAME_SIZE - RX_OFFSET) as usize;

/// The base address of the chunk holding `addr`.
#[inline]
pub fn chunk_base(addr: u64) -> u64 {
    addr & !(u64::from(FRAME_SIZE) - 1)
}

/// One worker's frame memory (module doc): an `xsk_rs` UMEM shareable by
/// every socket the worker binds. Cloning is cheap (reference counted) and
/// hands out the same memory: the engine's peers hold clones to copy frames
/// into chunks the owner lent them.
#[derive(Clone, Debug)]
pub struct WorkerUmem {
    umem: Umem,
    frames: u32,
    /// Entries of every ring of its sockets.
    ring_size: u32,
    /// Address of the UMEM's first byte (only for prefetch hints, never
    /// dereferenced).
    base: usize,
    /// Whether a socket is bound from it already (clones share it): later
    /// ones share the UMEM and take its first socket's mode.
    bound: Arc<AtomicBool>,
}

impl WorkerUmem {
    /// A UMEM of `frames` chunks (a power of two >= 64) and its pool: one
    /// descriptor per chunk, all owned by the caller (capacity `frames`).
    /// Every ring of its sockets has `frames` entries.
    pub fn new(frames: u32) -> anyhow::Result<(WorkerUmem, Vec<FrameDesc>)> {
        Self::with_ring_size(frames, frames)
    }

    /// [`WorkerUmem::new`] with rings of `ring_size` entries (a power of
    /// two) instead: larger than the pool for a UMEM shared by several
    /// sockets whose rings need not each hold every frame, or smaller.
    pub fn with_ring_size(
        frames: u32,
        ring_size: u32,
    ) -> anyhow::Result<(WorkerUmem, Vec<FrameDesc>)> {
        anyhow::ensure!(
            frames.is_power_of_two() && frames >= 64,
            "frames per queue must be a power of two >= 64 (got {frames})"
        );
        let size = QueueSize::new(ring_size)?;
        let cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE)?)
            .frame_headroom(0)
            .fill_queue_size(size)
            .comp_queue_size(size)
            .build()?;
        anyhow::ensure!(
            cfg.xdp_headroom() == RX_OFFSET,
            "xsk-rs reports an XDP headroom of {}",
            cfg.xdp_headroom()
        );
        let n = NonZeroU32::new(frames).context("no frames")?;
        let (umem, descs) = Umem::new(cfg, n, false).context("creating the UMEM")?;
        let first = descs.first().context("a UMEM without frames")?;
        // SAFETY: the descriptor is of this UMEM and nothing else has seen
        // it yet (the UMEM was just created), so reading its bytes races
        // with nobody; only the address is kept.
        let data = unsafe { umem.data(first) };
        let base = data.contents().as_ptr() as usize - first.addr();
        Ok((
            WorkerUmem {
                umem,
                frames,
                ring_size,
                base,
                bound: Arc::new(AtomicBool::new(false)),
            },
            descs,
        ))
    }

    /// Number of chunks.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Whether `d` points into this UMEM.
    #[inline]
    pub fn contains(&self, d: &FrameDesc) -> bool {
        (d.addr() as u64) < u64::from(self.frames) * u64::from(FRAME_SIZE)
    }

    /// Prefetches the first cache line of frame `d` (a hint: reads nothing).
    #[inline(always)]
    pub fn prefetch(&self, d: &FrameDesc) {
        crate::hint::prefetch_ptr(self.base.wrapping_add(d.addr()) as *const u8);
    }

    /// Binds a socket to `o.ifname` queue `o.queue` on this UMEM, with its
    /// own fill, completion, RX and TX rings (every ring as large as the
    /// pool), in zero-copy or copy mode as `o.zero_copy` asks (`Auto` tries
    /// zero-copy first and logs why it fell back), always with
    /// `XDP_USE_NEED_WAKEUP` and without libxdp's default XDP program
    /// (lvsfwd's own, `prog`, steers frames to the socket). The first
    /// socket takes the rings the UMEM was created with; later ones share
    /// the UMEM, in the first one's mode (the kernel gives them no choice:
    /// `On` fails when that is copy mode; `Auto` and `Off` take it). A pair
    /// this UMEM is bound to already is refused.
    pub fn bind(&self, o: &BindOptions<'_>) -> anyhow::Result<Xsk> {
        let x = self.bind_mode(o)?;
        self.bound.store(true, Ordering::Relaxed);
        Ok(x)
    }

    fn bind_mode(&self, o: &BindOptions<'_>) -> anyhow::Result<Xsk> {
        let q = o.queue;
        let ifname = o.ifname;
        let zc = BindFlags::XDP_ZEROCOPY | BindFlags::XDP_USE_NEED_WAKEUP;
        let copy = BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP;
        if self.bound.load(Ordering::Relaxed) {
            // One attempt: a failed one would leave the queue busy for a
            // while (the kernel releases a socket's pool deferred).
            let x = self
                .bind_with(o, copy)
                .map_err(|e| anyhow::anyhow!("{ifname} queue {q}: bind failed: {e:#}"))?;
            anyhow::ensure!(
                x.zero_copy || o.zero_copy != ZeroCopy::On,
                "{ifname} queue {q}: zero-copy asked for, but its UMEM is shared with a \
                 copy-mode socket (a shared UMEM runs in its first socket's mode)"
            );
            return Ok(x);
        }
        match o.zero_copy {
            ZeroCopy::On => self
                .bind_with(o, zc)
                .map_err(|e| anyhow::anyhow!("{ifname} queue {q}: zero-copy bind failed: {e:#}")),
            ZeroCopy::Off => self
                .bind_with(o, copy)
                .map_err(|e| anyhow::anyhow!("{ifname} queue {q}: bind failed: {e:#}")),
            ZeroCopy::Auto => match self.bind_with(o, zc) {
                Ok(x) => Ok(x),
                Err(e) => {
                    log::warn!(
                        "{ifname} queue {q}: zero-copy bind failed ({e:#}); falling back to copy mode"
                    );
                    self.bind_with(o, copy)
                        .map_err(|e| anyhow::anyhow!("{ifname} queue {q}: bind failed: {e:#}"))
                }
            },
        }
    }

    /// One attempt with `flags`. On failure nothing is left bound (xsk-rs
    /// deletes what it created, and keeps the UMEM's own rings for a
    /// retry).
    fn bind_with(&self, o: &BindOptions<'_>, flags: BindFlags) -> anyhow::Result<Xsk> {
        let ifname: Interface = o.ifname.parse().context("interface name")?;
        let size = QueueSize::new(self.ring_size)?;
        let cfg = SocketConfig::builder()
            .rx_queue_size(size)
            .tx_queue_size(size)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(flags)
            .build();
        // SAFETY: XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD is set, which is what
        // `Socket::new` asks of a caller sharing a UMEM.
        let made = unsafe { Socket::new(cfg, &self.umem, &ifname, o.queue) };
        let (tx, rx, fq_cq) = made.map_err(|e| match std::error::Error::source(&e) {
            Some(src) => anyhow::anyhow!("{e}: {src}"),
            None => anyhow::anyhow!("{e}"),
        })?;
        let (fill, comp) = fq_cq.with_context(|| {
            format!(
                "{} queue {} is already bound from this UMEM",
                o.ifname, o.queue
            )
        })?;
        let fd = rx.fd().as_raw_fd();
        // The kernel's word, not the flag asked for: a socket sharing a
        // UMEM takes the mode of the UMEM's first socket, whatever its
        // bind flags said (libxdp does not even pass them).
        let actual = kernel_zero_copy(fd)?;
        Ok(Xsk {
            fd,
            tx,
            rx,
            fill,
            comp,
            ring_size: self.ring_size,
            zero_copy: actual,
            queue: o.queue,
        })
    }

    /// Frame `d`'s buffer (module doc, "Buffers"), to read and rewrite;
    /// `None` for a descriptor outside this UMEM.
    ///
    /// # Safety
    /// The caller owns frame `d` (module doc): neither the kernel nor
    /// another thread may access its chunk, and no other reference to its
    /// bytes may be live, for as long as the result is used.
    #[inline]
    pub unsafe fn frame_mut<'a>(&'a self, d: &'a mut FrameDesc) -> Option<FrameMut<'a>> {
        if !self.contains(d) {
            return None;
        }
        let len = d.lengths().data();
        // SAFETY: `d` is of this UMEM (checked above) and the caller owns
        // the frame exclusively (contract).
        let mut data = unsafe { self.umem.data_mut(d) };
        // Expose the whole buffer; `finish` sets the frame length again.
        data.cursor().set_pos(usize::MAX);
        Some(FrameMut { data, len })
    }

    /// Frame `d`'s bytes, read-only (for prefetching); `None` for a
    /// descriptor outside this UMEM.
    ///
    /// # Safety
    /// The caller owns frame `d` and holds no mutable reference to its
    /// bytes while the result lives.
    #[inline]
    pub unsafe fn peek(&self, d: &FrameDesc) -> Option<&[u8]> {
        if !self.contains(d) {
            return None;
        }
        // SAFETY: `d` is of this UMEM (checked above); the caller owns it
        // and writes nothing meanwhile (contract).
        let data = unsafe { self.umem.data(d) };
        Some(data.contents())
    }
}

/// An owned frame's buffer while its owner works on it
/// ([`WorkerUmem::frame_mut`]).
#[derive(Debug)]
pub struct FrameMut<'a> {
    data: DataMut<'a>,
    len: usize,
}

impl FrameMut<'_> {
    /// The frame's length when it was taken (as received, or as a peer
    /// wrote it).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The whole buffer: the frame at its start, then the tailroom up to
    /// the end of the chunk ([`BUF_SIZE`] bytes for a pool descriptor).
    #[inline]
    pub fn buf(&mut self) -> &mut [u8] {
        self.data.contents_mut()
    }
    /// Makes `buf()[head..head + len]` the frame the descriptor carries
    /// (moving it to the buffer's start when `head > 0`), ready for a TX
    /// ring or a peer's inbox.
    #[inline]
    pub fn finish(mut self, head: usize, len: usize) {
        let buf = self.data.contents_mut();
        let len = len.min(buf.len().saturating_sub(head));
        if head > 0 {
            buf.copy_within(head..head + len, 0);
        }
        self.data.cursor().set_pos(len);
    }
}

/// What [`WorkerUmem::bind`] needs.
#[derive(Clone, Debug)]
pub struct BindOptions<'a> {
    pub ifname: &'a str,
    pub queue: u32,
    pub zero_copy: ZeroCopy,
}

/// An open AF_XDP socket bound to one (interface, queue) pair, with its
/// four rings. Its frames are those of the [`WorkerUmem`] it was bound
/// from (it keeps the UMEM alive).
#[derive(Debug)]
pub struct Xsk {
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    comp: CompQueue,
    fd: RawFd,
    ring_size: u32,
    zero_copy: bool,
    queue: u32,
}

impl Xsk {
    pub fn fd(&self) -> RawFd {
        self.fd
    }
    pub fn queue(&self) -> u32 {
        self.queue
    }
    /// Whether the socket was bound in zero-copy mode (the kernel refuses
    /// an `XDP_ZEROCOPY` bind it cannot honour, and forces copy mode with
    /// `XDP_COPY`).
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Moves completed TX frames to `free`, as many as it has spare
    /// capacity for (no reallocation). Returns how many.
    pub fn reap_completions(&mut self, free: &mut Vec<FrameDesc>) -> u32 {
        let room = (free.capacity() - free.len()).min(u32::MAX as usize) as u32;
        let n = self.comp.nb_avail(room).min(room) as usize;
        if n == 0 {
            return 0;
        }
        let old = free.len();
        free.resize(old + n, FrameDesc::default());
        // SAFETY: the completion ring only returns frames this socket sent,
        // all of the UMEM it was bound from, whose pool `free` is.
        let got = unsafe { self.comp.consume(&mut free[old..]) };
        free.truncate(old + got);
        got as u32
    }

    /// Frames on the fill ring the kernel has not taken yet.
    pub fn fill_level(&mut self) -> u32 {
        // Asking for the whole ring refreshes the cached consumer index.
        let free = self.fill.nb_free(self.ring_size);
        self.ring_size.saturating_sub(free)
    }

    /// Tops the fill ring up to `target` frames from the end of `free`
    /// (several sockets on one UMEM share its frames this way). Returns
    /// how many were given to the kernel.
    pub fn refill_to(&mut self, free: &mut Vec<FrameDesc>, target: u32) -> u32 {
        let level = self.fill_level();
        let want = target.saturating_sub(level) as usize;
        let keep = free.len().saturating_sub(want);
        self.refill(free, keep)
    }

    /// Puts frames from the end of `free` on the fill ring, leaving at
    /// least `keep` in `free`. Returns how many were given to the kernel.
    pub fn refill(&mut self, free: &mut Vec<FrameDesc>, keep: usize) -> u32 {
        let want = free.len().saturating_sub(keep).min(u32::MAX as usize) as u32;
        if want == 0 {
            return 0;
        }
        let n = self.fill.nb_free(want).min(want) as usize;
        if n == 0 {
            return 0;
        }
        let start = free.len() - n;
        // SAFETY: the frames are this worker's (free list), of the UMEM
        // this socket was bound from; they pass to the kernel here.
        let got = unsafe { self.fill.produce(&free[start..]) };
        // `produce` takes a prefix of the slice; drop exactly that.
        free.drain(start..start + got);
        got as u32
    }

    /// Takes up to `out.len()` received frames into `out` (from its start)
    /// and releases them from the ring: they now belong to the caller.
    /// Returns how many.
    pub fn receive(&mut self, out: &mut [FrameDesc]) -> usize {
        // SAFETY: the RX ring only returns frames of the UMEM this socket
        // was bound from; the descriptors in `out` are overwritten.
        unsafe { self.rx.consume(out) }
    }

    /// Queues as many of `descs` for transmission as the TX ring has room
    /// for, in order; returns how many. The queued frames belong to the
    /// kernel until they show up on this socket's completion ring.
    pub fn transmit(&mut self, descs: &[FrameDesc]) -> usize {
        if descs.is_empty() {
            return 0;
        }
        let want = descs.len().min(u32::MAX as usize) as u32;
        let n = self.tx.nb_free(want).min(want) as usize;
        if n == 0 {
            return 0;
        }
        // SAFETY: the frames are the caller's, of the UMEM this socket was
        // bound from; they pass to the kernel here.
        unsafe { self.tx.produce(&descs[..n]) }
    }

    /// Descriptors on the TX ring the kernel has not consumed yet. In copy
    /// mode one `sendto` consumes at most 32 of them (the kernel's TX batch),
    /// so a caller that queued more must kick again until this is 0.
    pub fn tx_pending(&mut self) -> u32 {
        // Asking for the whole ring refreshes the cached consumer index.
        let free = self.tx.nb_free(self.ring_size);
        self.ring_size.saturating_sub(free)
    }

    /// Kicks TX processing until the kernel has consumed every queued
    /// descriptor: in copy mode one `sendto` moves at most 32 frames (the
    /// kernel's TX batch), so a single kick after a larger batch would leave
    /// the rest queued until the next round and let the TX ring (and the
    /// UMEM chunks on it) fill up. Stops early when a kick makes no
    /// progress (the peer is busy; the next round retries) and after
    /// [`MAX_TX_KICKS`]. Returns the number of kicks.
    pub fn drain_tx(&mut self) -> io::Result<u32> {
        let mut kicks = 0;
        while kicks < MAX_TX_KICKS && self.tx_needs_wakeup() {
            let before = self.tx_pending();
            if before == 0 {
                break;
            }
            self.kick_tx()?;
            kicks += 1;
            if self.tx_pending() >= before {
                break;
            }
        }
        Ok(kicks)
    }

    /// The kernel asks to be woken up to process the TX ring.
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// The kernel asks to be woken up to refill from the fill ring (the
    /// driver ran dry); `poll` does it.
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Kicks TX processing (`sendto` with no data). Transient refusals
    /// (the kernel is busy or out of buffers) are not errors: the frames
    /// stay queued and the next kick retries.
    pub fn kick_tx(&self) -> io::Result<()> {
        match self.tx.wakeup() {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(()),
            r => r,
        }
    }

    /// Waits up to `timeout_ms` for received frames or for `extra_fd` (if
    /// any) to become readable. Also the wakeup the fill ring asks for.
    pub fn poll(&self, extra_fd: Option<RawFd>, timeout_ms: i32) -> io::Result<()> {
        let mut fds = [
            libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: extra_fd.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let nfds = if extra_fd.is_some() { 2 } else { 1 };
        // SAFETY: `fds` is a valid array of at least `nfds` pollfds.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout_ms) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The kernel's drop counters for this socket.
    pub fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        let s = self.rx.fd().xdp_statistics()?;
        Ok(libc::xdp_statistics {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs(),
            tx_ring_empty_descs: s.tx_ring_empty_descs(),
        })
    }

    /// The socket's pending error (`SO_ERROR`, cleared by reading it), if
    /// any: `ENETDOWN` once the interface it is bound to is gone (the
    /// kernel unbinds it then and it never receives again).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `len` are valid for writes and `len` is its size.
        let ret = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
    }
}

/// Whether the kernel runs AF_XDP socket `fd` in zero-copy mode
/// (`XDP_OPTIONS`).
fn kernel_zero_copy(fd: RawFd) -> io::Result<bool> {
    let mut opts = libc::xdp_options { flags: 0 };
    let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
    // SAFETY: `opts` and `len` are valid for writes and `len` is its size.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_OPTIONS,
            (&mut opts as *mut libc::xdp_options).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// Most file descriptors [`poll_readable`] waits on: a worker's socket on
/// each NIC (`config::MAX_INTERFACES`) and its doorbell.
pub const MAX_POLL_FDS: usize = 9;

/// Waits up to `timeout_ms` for any of `fds` (at most [`MAX_POLL_FDS`];
/// more are ignored) to become readable: a worker with a socket on several
/// NICs sleeps on all of them (also the wakeup their fill rings ask for).
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<()> {
    let mut p = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; MAX_POLL_FDS];
    for (slot, &fd) in p.iter_mut().zip(fds) {
        slot.fd = fd;
    }
    let n = fds.len().min(MAX_POLL_FDS) as libc::nfds_t;
    // SAFETY: `p` is a valid array of MAX_POLL_FDS >= n pollfds.
    let ret = unsafe { libc::poll(p.as_mut_ptr(), n, timeout_ms) };
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    Ok(())
}

/// Wakes a worker that sleeps in [`Xsk::poll`] when a peer hands it frames
/// (an eventfd plus an "asleep" flag, so a busy worker costs its peers no
/// syscall).
///
/// Protocol (Dekker-style, both sides fence): the sleeper announces
/// [`Doorbell::going_to_sleep`], then looks at its inbox one last time and
/// only then polls; a producer pushes to the inbox, then [`Doorbell::ring`]s.
/// Either the sleeper sees the frame or the producer sees the flag.
#[derive(Debug)]
pub struct Doorbell {
    fd: EventFd,
    asleep: AtomicBool,
}

impl Doorbell {
    pub fn new() -> io::Result<Doorbell> {
        let fd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(Doorbell {
            fd,
            asleep: AtomicBool::new(false),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The owner is about to sleep: from now on producers must ring.
    pub fn going_to_sleep(&self) {
        self.asleep.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The owner is awake again; clears any pending ring (EAGAIN: nothing
    /// pending).
    pub fn woke(&self) {
        self.asleep.store(false, Ordering::SeqCst);
        let _ = self.fd.read();
    }

    /// After pushing to the owner's inbox: wakes it if it sleeps.
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::SeqCst) {
            // A full counter (EAGAIN) still leaves it readable.
            let _ = self.fd.write(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn chunk_base_finds_the_chunk_of_any_address_inside_it() {
        assert_eq!(chunk_base(0), 0);
        assert_eq!(chunk_base(256), 0);
        assert_eq!(chunk_base(3 * 4096 + 256 - 40), 3 * 4096);
        assert_eq!(chunk_base(5 * 4096 + 4095), 5 * 4096);
    }

    #[test]
    fn a_worker_umem_hands_out_one_descriptor_per_chunk() {
        let (u, pool) = WorkerUmem::new(64).unwrap();
        assert_eq!(u.frames(), 64);
        assert_eq!(pool.len(), 64);
        assert_eq!(pool.capacity(), 64, "the pool never grows");
        for (i, d) in pool.iter().enumerate() {
            assert_eq!(d.addr() as u64, i as u64 * 4096 + u64::from(RX_OFFSET));
            assert!(u.contains(d));
        }
        assert!(WorkerUmem::new(100).is_err(), "not a power of two");
        assert!(WorkerUmem::new(32).is_err(), "too few");
    }

    #[test]
    fn a_frame_buffer_runs_to_the_end_of_its_chunk_and_finish_sets_the_frame() {
        let (u, mut pool) = WorkerUmem::new(64).unwrap();
        let mut d = pool[2];
        // SAFETY: the UMEM is private to this test and no socket uses it.
        let mut f = unsafe { u.frame_mut(&mut d) }.unwrap();
        assert_eq!(f.len(), 0);
        assert_eq!(f.buf().len(), BUF_SIZE);
        f.buf()[10..14].copy_from_slice(b"abcd");
        f.buf()[BUF_SIZE - 1] = 7;
        f.finish(10, 4);
        assert_eq!(d.lengths().data(), 4);
        // SAFETY: as above; the FrameMut is gone.
        let moved = unsafe { u.peek(&d) }.unwrap();
        assert_eq!(moved, b"abcd", "moved to the front");
        // SAFETY: as above.
        let mut f = unsafe { u.frame_mut(&mut d) }.unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f.buf()[BUF_SIZE - 1], 7, "same chunk, to its end");
        f.finish(0, BUF_SIZE + 100);
        assert_eq!(d.lengths().data(), BUF_SIZE, "clamped to the buffer");
        // A descriptor of a larger UMEM is refused, not indexed.
        let (_, big) = WorkerUmem::new(128).unwrap();
        let mut far = big[100];
        // SAFETY: refused before any access.
        assert!(unsafe { u.frame_mut(&mut far) }.is_none());
        // SAFETY: as above.
        assert!(unsafe { u.peek(&far) }.is_none());
        pool.clear();
    }

    #[test]
    fn doorbell_rings_only_for_a_sleeper() {
        let b = Doorbell::new().unwrap();
        b.ring();
        assert!(!readable(b.fd()), "an awake owner costs no syscall");
        b.going_to_sleep();
        b.ring();
        assert!(readable(b.fd()), "a sleeping owner is woken");
        b.woke();
        assert!(!readable(b.fd()), "waking clears the ring");
    }

    #[test]
    fn binding_a_missing_interface_fails_cleanly() {
        let (u, _pool) = WorkerUmem::new(64).unwrap();
        let e = u
            .bind(&BindOptions {
                ifname: "lfnosuchif0",
                queue: 0,
                zero_copy: ZeroCopy::Off,
            })
            .unwrap_err();
        assert!(e.to_string().contains("lfnosuchif0"), "{e}");
    }
}
