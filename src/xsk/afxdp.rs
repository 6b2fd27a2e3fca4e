//! One AF_XDP socket and its UMEM, driven through libxdp's ring helpers.
//!
//! Owns: the UMEM area (an anonymous mapping cut into [`FRAME_SIZE`] chunks,
//! aligned mode), the libxdp UMEM and socket objects, and the four rings
//! (fill, completion, RX, TX). Everything `unsafe` about AF_XDP in lvsfwd
//! lives in this file; the worker loop in `engine` sees only safe methods
//! plus [`UmemArea::chunk_mut`], whose contract is the frame-ownership rule.
//!
//! Frame ownership (the invariant every `unsafe` block here leans on): a
//! chunk is at any time owned by exactly one party: the kernel (between
//! being put on the fill or TX ring and coming back on the RX or completion
//! ring), or one worker (its free list, its current batch, or a chunk it
//! lent to a peer, which then owns it until it comes back through the peer's
//! inbox). Only the owner creates a slice over a chunk.
//!
//! Addresses: the fill ring takes chunk base addresses; the kernel returns a
//! received packet as `base + offset` (offset = XDP headroom, 256 bytes in
//! copy mode). A TX descriptor may carry any address inside the chunk (the
//! kernel's aligned-mode check is `offset + len <= chunk size`), which is
//! what lets the data plane grow a frame into the headroom (tunnels).
//!
//! Deliberately not here: multi-buffer (XDP_USE_SG) frames, shared UMEMs
//! and huge pages; frames larger than a chunk minus the headroom are dropped
//! by the kernel.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};

use libxdp_sys as sys;

use crate::config::ZeroCopy;

/// Size of one UMEM chunk (a page: the aligned-mode chunk size must be a
/// power of two, and a page holds any Ethernet frame plus headroom).
pub const FRAME_SIZE: u32 = 4096;
/// Most `sendto` kicks of one [`Xsk::drain_tx`] (a full default ring's
/// worth of 32-frame copy-mode batches).
pub const MAX_TX_KICKS: u32 = 128;
/// Where the kernel puts a received packet inside its chunk in copy mode
/// (zero-copy drivers use the same XDP headroom).
pub const RX_OFFSET: u32 = sys::XDP_PACKET_HEADROOM;

/// The base address of the chunk holding `addr`.
#[inline]
pub fn chunk_base(addr: u64) -> u64 {
    addr & !(u64::from(FRAME_SIZE) - 1)
}

/// The frame memory shared with the kernel.
#[derive(Debug)]
pub struct UmemArea {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the area is plain memory; which thread may touch which chunk is
// governed by the frame-ownership rule in the module doc, and every access
// goes through `chunk_mut`, whose contract states it.
unsafe impl Send for UmemArea {}
// SAFETY: as above: shared references only hand out the base pointer;
// chunk accesses are exclusive by the ownership rule.
unsafe impl Sync for UmemArea {}

impl UmemArea {
    fn new(frames: u32) -> io::Result<UmemArea> {
        let len = frames as usize * FRAME_SIZE as usize;
        // SAFETY: an anonymous private mapping with no address hint touches
        // no existing memory; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(UmemArea { ptr, len })
    }

    /// Number of chunks.
    pub fn frames(&self) -> u32 {
        (self.len / FRAME_SIZE as usize) as u32
    }

    /// Whether `base` is the base of a chunk of this area.
    pub fn is_chunk(&self, base: u64) -> bool {
        base.is_multiple_of(u64::from(FRAME_SIZE)) && base < self.len as u64
    }

    /// Prefetches the cache line at UMEM address `addr` (a hint: any
    /// address is harmless).
    #[inline(always)]
    pub fn prefetch(&self, addr: u64) {
        crate::hint::prefetch_ptr(self.ptr.as_ptr().wrapping_add(addr as usize));
    }

    /// The whole chunk whose base address is `base`.
    ///
    /// # Safety
    /// The caller owns the chunk (module doc): neither the kernel nor another
    /// thread may access it, and no other slice over it may be live, for as
    /// long as the returned slice is used. `base` must satisfy
    /// [`UmemArea::is_chunk`] (checked in debug builds).
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn chunk_mut(&self, base: u64) -> &mut [u8] {
        debug_assert!(self.is_chunk(base));
        // SAFETY: `base` is a chunk base inside the mapping (contract), so
        // the range [base, base + FRAME_SIZE) is inside it; exclusivity is
        // the caller's contract.
        let start = self.ptr.as_ptr().wrapping_add(base as usize);
        // SAFETY: as above: `start` is `base` bytes into the mapping.
        unsafe { std::slice::from_raw_parts_mut(start, FRAME_SIZE as usize) }
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `new` with this length and
        // every user (socket, UMEM, peers holding an `Arc`) is gone.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The four rings. Boxed so their addresses stay fixed: libxdp keeps
/// pointers to the fill and completion rings until the socket is deleted.
struct Rings {
    fill: sys::xsk_ring_prod,
    comp: sys::xsk_ring_cons,
    rx: sys::xsk_ring_cons,
    tx: sys::xsk_ring_prod,
}

impl Rings {
    fn empty() -> Box<Rings> {
        fn prod() -> sys::xsk_ring_prod {
            sys::xsk_ring_prod {
                cached_prod: 0,
                cached_cons: 0,
                mask: 0,
                size: 0,
                producer: ptr::null_mut(),
                consumer: ptr::null_mut(),
                ring: ptr::null_mut(),
                flags: ptr::null_mut(),
            }
        }
        fn cons() -> sys::xsk_ring_cons {
            sys::xsk_ring_cons {
                cached_prod: 0,
                cached_cons: 0,
                mask: 0,
                size: 0,
                producer: ptr::null_mut(),
                consumer: ptr::null_mut(),
                ring: ptr::null_mut(),
                flags: ptr::null_mut(),
            }
        }
        Box::new(Rings {
            fill: prod(),
            comp: cons(),
            rx: cons(),
            tx: prod(),
        })
    }
}

/// What [`Xsk::open`] needs.
#[derive(Clone, Debug)]
pub struct XskOptions<'a> {
    pub ifname: &'a str,
    pub queue: u32,
    /// UMEM chunks; a power of two (also the size of every ring).
    pub frames: u32,
    pub zero_copy: ZeroCopy,
}

/// An open, bound AF_XDP socket with its own UMEM.
pub struct Xsk {
    // Field order is drop order: the socket goes before the UMEM it uses;
    // the area is unmapped last (see Drop).
    xsk: NonNull<sys::xsk_socket>,
    umem: NonNull<sys::xsk_umem>,
    rings: Box<Rings>,
    area: Arc<UmemArea>,
    fd: RawFd,
    zero_copy: bool,
    queue: u32,
}

// SAFETY: the libxdp objects and rings are owned exclusively by this value
// and have no thread affinity; the value is built on one thread and then
// used by exactly one worker thread.
unsafe impl Send for Xsk {}

impl std::fmt::Debug for Xsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xsk")
            .field("queue", &self.queue)
            .field("fd", &self.fd)
            .field("zero_copy", &self.zero_copy)
            .field("frames", &self.area.frames())
            .finish()
    }
}

fn errno(ret: i32) -> io::Error {
    io::Error::from_raw_os_error(-ret)
}

impl Xsk {
    /// Creates the UMEM and the socket and binds it to `ifname` queue
    /// `queue`, in zero-copy or copy mode as `zero_copy` asks (`Auto` tries
    /// zero-copy first and logs why it fell back), always with
    /// `XDP_USE_NEED_WAKEUP`.
    pub fn open(o: &XskOptions<'_>) -> anyhow::Result<Xsk> {
        anyhow::ensure!(
            o.frames.is_power_of_two() && o.frames >= 64,
            "frames per queue must be a power of two >= 64 (got {})",
            o.frames
        );
        let name = CString::new(o.ifname)?;
        let area = Arc::new(UmemArea::new(o.frames)?);
        let zc = sys::XDP_ZEROCOPY | sys::XDP_USE_NEED_WAKEUP;
        let copy = sys::XDP_COPY | sys::XDP_USE_NEED_WAKEUP;
        let q = o.queue;
        match o.zero_copy {
            ZeroCopy::On => Self::bind(&name, o, area, zc)
                .map_err(|e| anyhow::anyhow!("{} queue {q}: zero-copy bind failed: {e}", o.ifname)),
            ZeroCopy::Off => Self::bind(&name, o, area, copy)
                .map_err(|e| anyhow::anyhow!("{} queue {q}: bind failed: {e}", o.ifname)),
            ZeroCopy::Auto => match Self::bind(&name, o, area.clone(), zc) {
                Ok(x) => Ok(x),
                Err(e) => {
                    log::warn!(
                        "{} queue {q}: zero-copy bind failed ({e}); falling back to copy mode",
                        o.ifname
                    );
                    Self::bind(&name, o, area, copy)
                        .map_err(|e| anyhow::anyhow!("{} queue {q}: bind failed: {e}", o.ifname))
                }
            },
        }
    }

    /// One attempt: a fresh libxdp UMEM over `area` and a socket bound with
    /// `bind_flags`. On failure everything created here is deleted again,
    /// so a retry starts clean.
    fn bind(
        name: &CString,
        o: &XskOptions<'_>,
        area: Arc<UmemArea>,
        bind_flags: u32,
    ) -> io::Result<Xsk> {
        let mut rings = Rings::empty();
        let ucfg = sys::xsk_umem_config {
            fill_size: o.frames,
            comp_size: o.frames,
            frame_size: FRAME_SIZE,
            frame_headroom: 0,
            flags: 0,
        };
        let mut umem: *mut sys::xsk_umem = ptr::null_mut();
        // SAFETY: the area is a live mapping of the given length that
        // outlives the UMEM (the Xsk holds an Arc and deletes the UMEM
        // first); the ring structs are boxed, so the pointers libxdp keeps
        // stay valid until the socket and UMEM are deleted.
        let ret = unsafe {
            sys::xsk_umem__create(
                &mut umem,
                area.ptr.as_ptr().cast(),
                area.len as u64,
                &mut rings.fill,
                &mut rings.comp,
                &ucfg,
            )
        };
        if ret != 0 {
            return Err(errno(ret));
        }
        let umem = NonNull::new(umem).ok_or_else(|| io::Error::other("libxdp gave a null UMEM"))?;
        // lvsfwd's own XDP program (prog.rs) steers frames to the socket:
        // libxdp must not load its default one.
        let scfg = sys::xsk_socket_config {
            rx_size: o.frames,
            tx_size: o.frames,
            __bindgen_anon_1: sys::xsk_socket_config__bindgen_ty_1 {
                libxdp_flags: sys::XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
            },
            xdp_flags: 0,
            bind_flags: bind_flags as u16,
        };
        let mut xsk: *mut sys::xsk_socket = ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `umem` was just created and has
        // no socket; the rings are boxed (fixed addresses) and outlive the
        // socket (same Xsk, deleted in Drop before the box is freed).
        let ret = unsafe {
            sys::xsk_socket__create(
                &mut xsk,
                name.as_ptr(),
                o.queue,
                umem.as_ptr(),
                &mut rings.rx,
                &mut rings.tx,
                &scfg,
            )
        };
        let Some(xsk) = NonNull::new(xsk).filter(|_| ret == 0) else {
            // SAFETY: the UMEM has no socket (creation failed and libxdp
            // undid its part), so it can be deleted; nothing else uses it.
            unsafe { sys::xsk_umem__delete(umem.as_ptr()) };
            return Err(if ret != 0 {
                errno(ret)
            } else {
                io::Error::other("libxdp gave a null socket")
            });
        };
        // SAFETY: `xsk` is a live socket.
        let fd = unsafe { sys::xsk_socket__fd(xsk.as_ptr()) };
        let mut x = Xsk {
            xsk,
            umem,
            rings,
            area,
            fd,
            zero_copy: false,
            queue: o.queue,
        };
        x.zero_copy = x.query_zero_copy()?;
        Ok(x)
    }

    /// Asks the kernel whether the socket runs in zero-copy mode.
    fn query_zero_copy(&self) -> io::Result<bool> {
        let mut opts = libc::xdp_options { flags: 0 };
        let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
        // SAFETY: `opts` and `len` are valid for writes and `len` is the size
        // of `opts`.
        let ret = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_XDP,
                libc::XDP_OPTIONS,
                (&mut opts as *mut libc::xdp_options).cast(),
                &mut len,
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(opts.flags & sys::XDP_OPTIONS_ZEROCOPY != 0)
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }
    pub fn queue(&self) -> u32 {
        self.queue
    }
    /// Whether the kernel reports zero-copy mode for this socket.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }
    pub fn area(&self) -> &Arc<UmemArea> {
        &self.area
    }

    /// Every chunk base of the UMEM (initially all owned by the caller).
    pub fn all_chunks(&self) -> impl Iterator<Item = u64> + use<> {
        (0..u64::from(self.area.frames())).map(|i| i * u64::from(FRAME_SIZE))
    }

    /// Moves completed TX chunks to `free`. `free` must have room for every
    /// chunk of the UMEM (no reallocation).
    pub fn reap_completions(&mut self, free: &mut Vec<u64>) -> u32 {
        let mut idx = 0u32;
        let c = &mut self.rings.comp;
        // SAFETY: `comp` is the completion ring of this live UMEM, used only
        // by this thread; `idx` is valid for writes.
        let n = unsafe { sys::xsk_ring_cons__peek(c, c.size, &mut idx) };
        for i in 0..n {
            // SAFETY: entries idx..idx+n were just made available by peek
            // and are read before release; the mask keeps the index in the
            // ring.
            let slot = c
                .ring
                .cast::<u64>()
                .wrapping_add((idx.wrapping_add(i) & c.mask) as usize);
            // SAFETY: as above; `slot` is an entry of the mapped ring.
            let addr = unsafe { *slot };
            free.push(chunk_base(addr));
        }
        if n > 0 {
            // SAFETY: releases exactly the n entries peeked above.
            unsafe { sys::xsk_ring_cons__release(c, n) };
        }
        n
    }

    /// Puts chunks from the end of `free` on the fill ring, leaving at least
    /// `keep` in `free`. Returns how many were given to the kernel.
    pub fn refill(&mut self, free: &mut Vec<u64>, keep: usize) -> u32 {
        let want = free.len().saturating_sub(keep) as u32;
        if want == 0 {
            return 0;
        }
        let f = &mut self.rings.fill;
        // SAFETY: the fill ring of this live UMEM, used only by this thread.
        let n = unsafe { sys::xsk_prod_nb_free(f, want) }.min(want);
        if n == 0 {
            return 0;
        }
        let mut idx = 0u32;
        // SAFETY: as above; `n` slots are free, so the reservation succeeds.
        let got = unsafe { sys::xsk_ring_prod__reserve(f, n, &mut idx) };
        for i in 0..got {
            let Some(base) = free.pop() else { break };
            // SAFETY: slots idx..idx+got were reserved above and are written
            // before submit; the mask keeps the index in the ring. The chunk
            // is ours (free list) and passes to the kernel here.
            let slot = f
                .ring
                .cast::<u64>()
                .wrapping_add((idx.wrapping_add(i) & f.mask) as usize);
            // SAFETY: as above; `slot` is an entry of the mapped ring.
            unsafe { *slot = base };
        }
        // SAFETY: submits exactly the `got` slots reserved and written above
        // (`free` had at least `want >= got` entries, so none was skipped).
        unsafe { sys::xsk_ring_prod__submit(f, got) };
        got
    }

    /// Takes up to `out.capacity()` received descriptors, as (address,
    /// length), into `out` (cleared first) and releases them from the ring:
    /// their chunks now belong to the caller.
    pub fn receive(&mut self, out: &mut Vec<(u64, u32)>) -> usize {
        out.clear();
        let max = out.capacity() as u32;
        let r = &mut self.rings.rx;
        let mut idx = 0u32;
        // SAFETY: the RX ring of this live socket, used only by this thread.
        let n = unsafe { sys::xsk_ring_cons__peek(r, max, &mut idx) };
        for i in 0..n {
            // SAFETY: entries idx..idx+n were made available by peek and are
            // read before release; the mask keeps the index in the ring.
            let slot = r
                .ring
                .cast::<sys::xdp_desc>()
                .wrapping_add((idx.wrapping_add(i) & r.mask) as usize);
            // SAFETY: as above; `slot` is an entry of the mapped ring.
            let d = unsafe { *slot };
            out.push((d.addr, d.len));
        }
        if n > 0 {
            // SAFETY: releases exactly the n entries peeked above.
            unsafe { sys::xsk_ring_cons__release(r, n) };
        }
        n as usize
    }

    /// Queues as many of `descs` (address, length) for transmission as the
    /// TX ring has room for, in order; returns how many. The chunks of the
    /// queued ones belong to the kernel until they show up on the
    /// completion ring.
    pub fn transmit(&mut self, descs: &[(u64, u32)]) -> usize {
        if descs.is_empty() {
            return 0;
        }
        let want = descs.len().min(u32::MAX as usize) as u32;
        let t = &mut self.rings.tx;
        // SAFETY: the TX ring of this live socket, used only by this thread.
        let n = unsafe { sys::xsk_prod_nb_free(t, want) }.min(want);
        if n == 0 {
            return 0;
        }
        let mut idx = 0u32;
        // SAFETY: as above; `n` slots are free, so the reservation succeeds.
        let got = unsafe { sys::xsk_ring_prod__reserve(t, n, &mut idx) };
        for (i, &(addr, len)) in descs.iter().take(got as usize).enumerate() {
            // SAFETY: slots idx..idx+got were reserved above and are written
            // before submit; the mask keeps the index in the ring.
            let slot = t
                .ring
                .cast::<sys::xdp_desc>()
                .wrapping_add((idx.wrapping_add(i as u32) & t.mask) as usize);
            // SAFETY: as above; `slot` is an entry of the mapped ring.
            unsafe {
                *slot = sys::xdp_desc {
                    addr,
                    len,
                    options: 0,
                }
            };
        }
        // SAFETY: submits exactly the `got` slots reserved and written above.
        unsafe { sys::xsk_ring_prod__submit(t, got) };
        got as usize
    }

    /// Descriptors on the TX ring the kernel has not consumed yet. In copy
    /// mode one `sendto` consumes at most 32 of them (the kernel's TX batch),
    /// so a caller that queued more must kick again until this is 0.
    pub fn tx_pending(&mut self) -> u32 {
        let t = &mut self.rings.tx;
        // SAFETY: the TX ring of this live socket, used only by this thread;
        // asking for the whole ring refreshes the cached consumer index.
        let free = unsafe { sys::xsk_prod_nb_free(t, t.size) };
        t.size.saturating_sub(free)
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
        // SAFETY: the TX ring of this live socket.
        unsafe { sys::xsk_ring_prod__needs_wakeup(&self.rings.tx) != 0 }
    }

    /// The kernel asks to be woken up to refill from the fill ring (the
    /// driver ran dry); `poll` does it.
    pub fn fill_needs_wakeup(&self) -> bool {
        // SAFETY: the fill ring of this live UMEM.
        unsafe { sys::xsk_ring_prod__needs_wakeup(&self.rings.fill) != 0 }
    }

    /// Kicks TX processing (`sendto` with no data). Transient refusals
    /// (the kernel is busy or out of buffers) are not errors: the frames
    /// stay queued and the next kick retries.
    pub fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: a zero-length sendto on our own socket with no buffer and
        // no address.
        let ret =
            unsafe { libc::sendto(self.fd, ptr::null(), 0, libc::MSG_DONTWAIT, ptr::null(), 0) };
        if ret >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN | libc::EINTR) => {
                Ok(())
            }
            _ => Err(e),
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
        // SAFETY: all-zero is a valid xdp_statistics (plain integers).
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for writes and `len` is its size.
        let ret = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut st as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
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

impl Drop for Xsk {
    fn drop(&mut self) {
        // SAFETY: the socket and UMEM were created in `bind` and are deleted
        // exactly once, socket first (it references the UMEM); the boxed
        // rings they point at are still alive (fields drop after this).
        unsafe { sys::xsk_socket__delete(self.xsk.as_ptr()) };
        // SAFETY: as above; the socket that referenced the UMEM is gone.
        let ret = unsafe { sys::xsk_umem__delete(self.umem.as_ptr()) };
        if ret != 0 {
            log::error!(
                "queue {}: deleting the UMEM failed: {}",
                self.queue,
                errno(ret)
            );
        }
    }
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
    fd: OwnedFd,
    asleep: AtomicBool,
}

impl Doorbell {
    pub fn new() -> io::Result<Doorbell> {
        // SAFETY: plain eventfd creation; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Doorbell {
            // SAFETY: `fd` was just created and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
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

    /// The owner is awake again; clears any pending ring.
    pub fn woke(&self) {
        self.asleep.store(false, Ordering::SeqCst);
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into `v` from our own non-blocking eventfd;
        // EAGAIN (nothing pending) is fine.
        unsafe { libc::read(self.fd(), (&mut v as *mut u64).cast(), 8) };
    }

    /// After pushing to the owner's inbox: wakes it if it sleeps.
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::SeqCst) {
            let v = 1u64;
            // SAFETY: writes 8 bytes from `v` to our own non-blocking
            // eventfd; a full counter (EAGAIN) still leaves it readable.
            unsafe { libc::write(self.fd(), (&v as *const u64).cast(), 8) };
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
    fn umem_area_knows_its_chunks() {
        let a = UmemArea::new(64).unwrap();
        assert_eq!(a.frames(), 64);
        assert!(a.is_chunk(0));
        assert!(a.is_chunk(63 * 4096));
        assert!(!a.is_chunk(64 * 4096), "past the end");
        assert!(!a.is_chunk(256), "not a chunk base");
        // SAFETY: the area is fresh and private to this test.
        let c = unsafe { a.chunk_mut(2 * 4096) };
        assert_eq!(c.len(), FRAME_SIZE as usize);
        c[4095] = 7;
        // SAFETY: as above; the previous slice is no longer used.
        assert_eq!(unsafe { a.chunk_mut(2 * 4096) }[4095], 7);
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
    fn opening_a_missing_interface_fails_cleanly() {
        let e = Xsk::open(&XskOptions {
            ifname: "lfnosuchif0",
            queue: 0,
            frames: 64,
            zero_copy: ZeroCopy::Off,
        })
        .unwrap_err();
        assert!(e.to_string().contains("lfnosuchif0"), "{e}");
        let e = Xsk::open(&XskOptions {
            ifname: "lo",
            queue: 0,
            frames: 100,
            zero_copy: ZeroCopy::Off,
        })
        .unwrap_err();
        assert!(e.to_string().contains("power of two"), "{e}");
    }
}
