//! The AF_XDP shell's own costs, in ns per frame or descriptor
//! (`Throughput::Elements`).
//!
//! `tun_shift/{64,512,1500}`: `FrameBuf::push_front` of an outer IPv4
//! header (20 bytes) on a frame at the start of its buffer, as the AF_XDP
//! buffer now is (the packet is moved toward the tail: a `memmove` of the
//! frame), next to `tun_headroom/*`, the same push into headroom (no move:
//! what replay's buffers, and the old UMEM layout, allowed).
//!
//! `ring/*` (root only: the bench creates a network namespace with a veth
//! pair, binds sockets there in copy mode, and removes it at the end; it
//! prints a note and skips them otherwise), each through xsk-rs (what the
//! shell uses: every ring accessor is an out-of-line call into libxdp-sys)
//! and through the old hand-driven libxdp ring code (kept here as the
//! baseline, copied from the pre-xsk-rs `afxdp.rs`):
//! - `ring/fill_produce` (printed, not a criterion bench): descriptors put
//!   on a fill ring in batches of 64, nothing else, until a fresh
//!   2^18-entry ring is full (nothing drains a fill ring without traffic);
//!   best of 5 fills;
//! - `ring/tx_complete_*`: 64 frames through a socket's TX ring, the
//!   `sendto` kicks copy mode needs and the completion ring back into the
//!   free list: the kernel's copy-mode transmit is the bulk of it, the
//!   ring accessors the difference.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use libxdp_sys as sys;
use lvsfwd::config::ZeroCopy;
use lvsfwd::wire::FrameBuf;
use lvsfwd::xsk::afxdp::{BUF_SIZE, BindOptions, FRAME_SIZE, FrameDesc, WorkerUmem, Xsk};

/// Descriptors per ring operation (the engine's default batch).
const BATCH: usize = 64;

fn tun_shift(c: &mut Criterion) {
    let mut g = c.benchmark_group("tun_shift");
    g.throughput(Throughput::Elements(1));
    let mut buf = vec![0u8; BUF_SIZE];
    for len in [64usize, 512, 1500] {
        g.bench_with_input(BenchmarkId::from_parameter(len), &len, |b, &len| {
            b.iter(|| {
                let mut fb = FrameBuf::new(black_box(&mut buf[..]), 0, len);
                fb.push_front(20).unwrap();
                black_box(fb.data()[0])
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("tun_headroom");
    g.throughput(Throughput::Elements(1));
    let mut buf = vec![0u8; 256 + BUF_SIZE];
    for len in [64usize, 512, 1500] {
        g.bench_with_input(BenchmarkId::from_parameter(len), &len, |b, &len| {
            b.iter(|| {
                let mut fb = FrameBuf::new(black_box(&mut buf[..]), 256, len);
                fb.push_front(20).unwrap();
                black_box(fb.data()[0])
            })
        });
    }
    g.finish();
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A network namespace with a veth pair (`lfbA` <-> `lfbB`, both up, 8
/// queues each),
/// entered by the calling thread; deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Option<Netns> {
        let name = format!("lfbench-{}", std::process::id());
        if !sh(&["ip", "netns", "add", &name]) {
            return None;
        }
        let ns = Netns(name);
        let ok = sh(&[
            "ip",
            "-n",
            &ns.0,
            "link",
            "add",
            "lfbA",
            "numtxqueues",
            "8",
            "numrxqueues",
            "8",
            "type",
            "veth",
            "peer",
            "name",
            "lfbB",
            "numtxqueues",
            "8",
            "numrxqueues",
            "8",
        ]) && sh(&["ip", "-n", &ns.0, "link", "set", "lfbA", "up"])
            && sh(&["ip", "-n", &ns.0, "link", "set", "lfbB", "up"]);
        let path = format!("/var/run/netns/{}", ns.0);
        (ok && lvsfwd::xsk::prog::enter_netns(Path::new(&path)).is_ok()).then_some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        sh(&["ip", "netns", "del", &self.0]);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A 64-byte frame from lfbA to lfbB of an experimental EtherType (the
/// receiving kernel drops it).
fn write_frame(buf: &mut [u8]) -> usize {
    buf[..64].fill(0);
    buf[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    buf[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    buf[12..14].copy_from_slice(&[0x88, 0xb5]);
    64
}

// ---- the old hand-driven path (baseline) ---------------------------------

/// The pre-xsk-rs UMEM and socket: libxdp objects, boxed rings, an
/// anonymous mapping.
struct OldXsk {
    xsk: Option<NonNull<sys::xsk_socket>>,
    umem: NonNull<sys::xsk_umem>,
    rings: Box<OldRings>,
    area: NonNull<u8>,
    len: usize,
    fd: i32,
}

struct OldRings {
    fill: sys::xsk_ring_prod,
    comp: sys::xsk_ring_cons,
    rx: sys::xsk_ring_cons,
    tx: sys::xsk_ring_prod,
}

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

impl OldXsk {
    /// A UMEM of `frames` chunks with a fill ring of `fill` entries, and a
    /// copy-mode socket on an (interface, queue) when one is given.
    fn open(frames: u32, fill: u32, ifname: Option<(&str, u32)>) -> OldXsk {
        let len = frames as usize * FRAME_SIZE as usize;
        // SAFETY: an anonymous private mapping with no address hint.
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
        assert_ne!(p, libc::MAP_FAILED);
        let area = NonNull::new(p.cast::<u8>()).unwrap();
        let mut rings = Box::new(OldRings {
            fill: prod(),
            comp: cons(),
            rx: cons(),
            tx: prod(),
        });
        let ucfg = sys::xsk_umem_config {
            fill_size: fill,
            comp_size: frames,
            frame_size: FRAME_SIZE,
            frame_headroom: 0,
            flags: 0,
        };
        let mut umem = ptr::null_mut();
        // SAFETY: the mapping outlives the UMEM (unmapped in Drop after the
        // UMEM is deleted); the boxed rings keep their addresses.
        let ret = unsafe {
            sys::xsk_umem__create(
                &mut umem,
                area.as_ptr().cast(),
                len as u64,
                &mut rings.fill,
                &mut rings.comp,
                &ucfg,
            )
        };
        assert_eq!(ret, 0, "xsk_umem__create");
        let umem = NonNull::new(umem).unwrap();
        let mut x = OldXsk {
            xsk: None,
            umem,
            rings,
            area,
            len,
            fd: -1,
        };
        if let Some((ifname, queue)) = ifname {
            let name = std::ffi::CString::new(ifname).unwrap();
            let scfg = sys::xsk_socket_config {
                rx_size: frames,
                tx_size: frames,
                __bindgen_anon_1: sys::xsk_socket_config__bindgen_ty_1 {
                    libxdp_flags: sys::XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
                },
                xdp_flags: 0,
                bind_flags: (sys::XDP_COPY | sys::XDP_USE_NEED_WAKEUP) as u16,
            };
            let mut xsk = ptr::null_mut();
            // SAFETY: `name` is NUL-terminated; the UMEM has no socket yet;
            // the boxed rings outlive the socket (deleted first in Drop).
            let ret = unsafe {
                sys::xsk_socket__create(
                    &mut xsk,
                    name.as_ptr(),
                    queue,
                    x.umem.as_ptr(),
                    &mut x.rings.rx,
                    &mut x.rings.tx,
                    &scfg,
                )
            };
            assert_eq!(ret, 0, "xsk_socket__create");
            let xsk = NonNull::new(xsk).unwrap();
            // SAFETY: a live socket.
            x.fd = unsafe { sys::xsk_socket__fd(xsk.as_ptr()) };
            x.xsk = Some(xsk);
        }
        x
    }

    /// The old `Xsk::refill` inner loop.
    fn refill(&mut self, free: &mut Vec<u64>) -> u32 {
        let want = free.len() as u32;
        let f = &mut self.rings.fill;
        // SAFETY: the fill ring of this live UMEM, used by this thread only.
        let n = unsafe { sys::xsk_prod_nb_free(f, want) }.min(want);
        if n == 0 {
            return 0;
        }
        let mut idx = 0u32;
        // SAFETY: as above; `n` slots are free.
        let got = unsafe { sys::xsk_ring_prod__reserve(f, n, &mut idx) };
        for i in 0..got {
            let Some(base) = free.pop() else { break };
            let slot = f
                .ring
                .cast::<u64>()
                .wrapping_add((idx.wrapping_add(i) & f.mask) as usize);
            // SAFETY: a reserved slot of the mapped ring, written before
            // submit.
            unsafe { *slot = base };
        }
        // SAFETY: submits the slots reserved and written above.
        unsafe { sys::xsk_ring_prod__submit(f, got) };
        got
    }

    /// The old `Xsk::transmit` inner loop.
    fn transmit(&mut self, descs: &[(u64, u32)]) -> usize {
        let want = descs.len() as u32;
        let t = &mut self.rings.tx;
        // SAFETY: the TX ring of this live socket, used by this thread only.
        let n = unsafe { sys::xsk_prod_nb_free(t, want) }.min(want);
        if n == 0 {
            return 0;
        }
        let mut idx = 0u32;
        // SAFETY: as above; `n` slots are free.
        let got = unsafe { sys::xsk_ring_prod__reserve(t, n, &mut idx) };
        for (i, &(addr, len)) in descs.iter().take(got as usize).enumerate() {
            let slot = t
                .ring
                .cast::<sys::xdp_desc>()
                .wrapping_add((idx.wrapping_add(i as u32) & t.mask) as usize);
            // SAFETY: a reserved slot of the mapped ring, written before
            // submit.
            unsafe {
                *slot = sys::xdp_desc {
                    addr,
                    len,
                    options: 0,
                }
            };
        }
        // SAFETY: submits the slots reserved and written above.
        unsafe { sys::xsk_ring_prod__submit(t, got) };
        got as usize
    }

    /// The old `Xsk::reap_completions` inner loop.
    fn reap(&mut self, free: &mut Vec<u64>) -> u32 {
        let mut idx = 0u32;
        let c = &mut self.rings.comp;
        // SAFETY: the completion ring of this live UMEM, this thread only.
        let n = unsafe { sys::xsk_ring_cons__peek(c, c.size, &mut idx) };
        for i in 0..n {
            let slot = c
                .ring
                .cast::<u64>()
                .wrapping_add((idx.wrapping_add(i) & c.mask) as usize);
            // SAFETY: an entry made available by peek, read before release.
            let addr = unsafe { *slot };
            free.push(addr & !(u64::from(FRAME_SIZE) - 1));
        }
        if n > 0 {
            // SAFETY: releases the entries peeked above.
            unsafe { sys::xsk_ring_cons__release(c, n) };
        }
        n
    }

    fn tx_pending(&mut self) -> u32 {
        let t = &mut self.rings.tx;
        // SAFETY: the TX ring of this live socket.
        let free = unsafe { sys::xsk_prod_nb_free(t, t.size) };
        t.size - free
    }

    fn tx_needs_wakeup(&self) -> bool {
        // SAFETY: the TX ring of this live socket.
        unsafe { sys::xsk_ring_prod__needs_wakeup(&self.rings.tx) != 0 }
    }

    fn kick(&self) {
        // SAFETY: a zero-length sendto on our own socket.
        unsafe { libc::sendto(self.fd, ptr::null(), 0, libc::MSG_DONTWAIT, ptr::null(), 0) };
    }

    fn chunk(&mut self, base: u64) -> &mut [u8] {
        assert!(base < self.len as u64);
        let start = self.area.as_ptr().wrapping_add(base as usize);
        // SAFETY: a chunk inside the mapping, not on any ring (the bench
        // writes frames before the first transmit).
        unsafe { std::slice::from_raw_parts_mut(start, FRAME_SIZE as usize) }
    }
}

impl Drop for OldXsk {
    fn drop(&mut self) {
        if let Some(x) = self.xsk {
            // SAFETY: created in `open`, deleted once, before the UMEM.
            unsafe { sys::xsk_socket__delete(x.as_ptr()) };
        }
        // SAFETY: created in `open`; its socket is gone.
        unsafe { sys::xsk_umem__delete(self.umem.as_ptr()) };
        // SAFETY: the mapping made in `open`; nothing uses it any more.
        unsafe { libc::munmap(self.area.as_ptr().cast(), self.len) };
    }
}

// ---- the benches -----------------------------------------------------------

/// Fill ring entries of the produce measurement: many batches per UMEM.
const BIG_FILL: u32 = 1 << 18;
/// Fills measured per path (the best one is reported).
const FILLS: u32 = 5;

/// ns per descriptor of filling a fresh `BIG_FILL`-entry fill ring in
/// batches of `BATCH` (xsk-rs), best of [`FILLS`]. Not a criterion bench:
/// nothing drains a fill ring without traffic, so each fill needs a fresh
/// socket (queue 3 and up: a socket's queue is released asynchronously).
fn fill_produce_xsk_rs() -> f64 {
    let mut best = f64::MAX;
    for round in 0..FILLS {
        // 64 frames produced again and again (the kernel never sees them).
        let (umem, pool) = WorkerUmem::with_ring_size(64, BIG_FILL).expect("UMEM");
        let mut x = bind(&umem, 3 + round);
        let batch: Vec<FrameDesc> = pool[..BATCH].to_vec();
        let mut free = Vec::with_capacity(BATCH);
        let batches = BIG_FILL as usize / BATCH;
        let t = Instant::now();
        for _ in 0..batches {
            free.extend_from_slice(&batch);
            let n = x.refill(&mut free, 0);
            black_box(n);
        }
        let ns = t.elapsed().as_nanos() as f64 / (batches * BATCH) as f64;
        assert!(free.is_empty(), "the ring took every descriptor");
        best = best.min(ns);
    }
    best
}

/// The same with the old hand-driven rings (a UMEM's fill ring needs no
/// socket there).
fn fill_produce_old() -> f64 {
    let mut best = f64::MAX;
    for _ in 0..FILLS {
        let mut x = OldXsk::open(64, BIG_FILL, None);
        let batch: Vec<u64> = (0..BATCH as u64)
            .map(|i| i * u64::from(FRAME_SIZE))
            .collect();
        let mut free = Vec::with_capacity(BATCH);
        let batches = BIG_FILL as usize / BATCH;
        let t = Instant::now();
        for _ in 0..batches {
            free.extend_from_slice(&batch);
            let n = x.refill(&mut free);
            black_box(n);
        }
        let ns = t.elapsed().as_nanos() as f64 / (batches * BATCH) as f64;
        assert!(free.is_empty(), "the ring took every descriptor");
        best = best.min(ns);
    }
    best
}

fn bind(umem: &WorkerUmem, queue: u32) -> Xsk {
    umem.bind(&BindOptions {
        ifname: "lfbA",
        queue,
        zero_copy: ZeroCopy::Off,
    })
    .expect("bind lfbA")
}

/// Sends one batch and waits for all of it to complete (xsk-rs path). A
/// completed descriptor comes back with length 0, so each frame's length
/// is set again (through its buffer: xsk-rs has no other setter), as the
/// old path writes it into each TX slot.
fn tx_round_xsk_rs(umem: &WorkerUmem, x: &mut Xsk, free: &mut Vec<FrameDesc>) {
    let start = free.len() - BATCH;
    for d in &mut free[start..] {
        // SAFETY: a descriptor of this UMEM on the free list (not on any
        // ring): this thread owns the frame.
        let f = unsafe { umem.frame_mut(d) };
        f.expect("pool descriptor").finish(0, 64);
    }
    let n = x.transmit(&free[start..]);
    free.truncate(free.len() - n);
    let mut spins = 0;
    while free.len() < start + BATCH && spins < 1_000_000 {
        x.drain_tx().expect("kick");
        x.reap_completions(free);
        spins += 1;
    }
    assert_eq!(free.len(), start + BATCH, "completions lost");
}

/// The same with the old hand-driven rings.
fn tx_round_old(x: &mut OldXsk, free: &mut Vec<u64>, descs: &mut Vec<(u64, u32)>) {
    let start = free.len() - BATCH;
    descs.clear();
    descs.extend(free[start..].iter().map(|&a| (a + 256, 64)));
    let n = x.transmit(descs);
    free.truncate(free.len() - n);
    let mut spins = 0;
    while free.len() < start + BATCH && spins < 1_000_000 {
        // The old drain_tx.
        let mut kicks = 0;
        while kicks < 128 && x.tx_needs_wakeup() {
            let before = x.tx_pending();
            if before == 0 {
                break;
            }
            x.kick();
            kicks += 1;
            if x.tx_pending() >= before {
                break;
            }
        }
        x.reap(free);
        spins += 1;
    }
    assert_eq!(free.len(), start + BATCH, "completions lost");
}

fn rings(c: &mut Criterion) {
    if !is_root() {
        eprintln!("xsk bench: not root, skipping ring/* (they need a netns and AF_XDP)");
        return;
    }
    let Some(_ns) = Netns::new() else {
        eprintln!("xsk bench: could not create the bench netns, skipping ring/*");
        return;
    };
    let (new, old) = (fill_produce_xsk_rs(), fill_produce_old());
    println!(
        "ring/fill_produce (best of {FILLS} fills of a {BIG_FILL}-entry ring, batches of {BATCH}): \
         xsk-rs {new:.2} ns/descriptor, old hand-driven {old:.2} ns/descriptor"
    );
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(3));

    {
        let (umem, pool) = WorkerUmem::new(1024).expect("UMEM");
        let mut x = bind(&umem, 2);
        let mut free = Vec::with_capacity(1024);
        for mut d in pool {
            // SAFETY: a fresh pool descriptor of this UMEM, not on any ring.
            let f = unsafe { umem.frame_mut(&mut d) };
            let mut f = f.expect("pool descriptor");
            let len = write_frame(f.buf());
            f.finish(0, len);
            free.push(d);
        }
        g.bench_function("tx_complete_xsk_rs", |b| {
            b.iter(|| tx_round_xsk_rs(&umem, &mut x, &mut free))
        });
        let st = x.statistics().expect("socket statistics");
        assert_eq!(st.tx_invalid_descs, 0, "the kernel refused TX descriptors");
    }
    {
        let mut x = OldXsk::open(1024, 1024, Some(("lfbA", 1)));
        let mut free: Vec<u64> = (0..1024u64).map(|i| i * u64::from(FRAME_SIZE)).collect();
        for &base in &free {
            let c = x.chunk(base);
            write_frame(&mut c[256..]);
        }
        let mut descs = Vec::with_capacity(BATCH);
        g.bench_function("tx_complete_old", |b| {
            b.iter(|| tx_round_old(&mut x, &mut free, &mut descs))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Numbers only: criterion's plots need system fonts, and a missing font
    // would end the run after the first benchmark.
    config = Criterion::default().without_plots();
    targets = tun_shift, rings
}
criterion_main!(benches);
