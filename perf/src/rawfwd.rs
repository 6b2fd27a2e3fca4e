//! `lvsperf rawfwd`: the ceiling of lvsfwd's I/O path. The same XDP program
//! with the same filter, the same sockets, rings, batch size, recycling and
//! idle policy as lvsfwd's engine (one pinned worker per queue, polling
//! empty rings for `idle_spin_us` after the last frame before sleeping in
//! `poll`), but the
//! per-frame work is only "swap the MACs and send it back out".
//!
//! With `--out-iface` it is the two-NIC ceiling instead: each worker
//! receives on its queue of `--iface` and transmits out of the same queue
//! of `--out-iface`, one UMEM for both sockets (as lvsfwd's workers serve
//! several NICs), and the per-frame work is writing the two MACs of the
//! outgoing link.
//!
//! Prints `ready` on stderr once every worker serves; stops on SIGTERM or
//! SIGINT and then prints `counters {json}` on stdout.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lvsfwd::config::{XdpMode, ZeroCopy};
use lvsfwd::service::Protocol;
use lvsfwd::xsk::engine::{DEFAULT_BATCH, DEFAULT_FRAMES_PER_QUEUE, DEFAULT_IDLE_SPIN};
use lvsfwd::xsk::port::{Port, PortOptions};
use lvsfwd::xsk::prog::{Filter, XdpProgram};

use crate::tester::parse_mac;

/// Same as the engine's: empty rounds before sleeping, and the sleep bound.
const IDLE_POLL_MS: i32 = 50;

#[derive(clap::Args, Debug, Clone)]
pub struct RawArgs {
    #[arg(long)]
    pub iface: String,
    /// RX queues to serve, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub queues: Vec<u32>,
    /// Core of worker i, comma-separated (default: 1, 0, ...).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// The virtual service's address (the XDP filter redirects its TCP
    /// and UDP traffic on `port`, as it would for lvsfwd).
    #[arg(long)]
    pub vip: Ipv4Addr,
    #[arg(long, default_value_t = 80)]
    pub port: u16,
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
    #[arg(long, default_value_t = DEFAULT_FRAMES_PER_QUEUE)]
    pub frames: u32,
    /// Microseconds of polling empty rings before sleeping (lvsfwd's
    /// `idle_spin_us`, same default).
    #[arg(long, default_value_t = DEFAULT_IDLE_SPIN.as_micros() as u64)]
    pub idle_spin_us: u64,
    /// Transmit out of this NIC instead of back out of `iface`.
    #[arg(long, requires_all = ["out_src_mac", "out_dst_mac"])]
    pub out_iface: Option<String>,
    /// With `--out-iface`: the source MAC of forwarded frames (that NIC's).
    #[arg(long)]
    pub out_src_mac: Option<String>,
    /// With `--out-iface`: the destination MAC (the next hop beyond it).
    #[arg(long)]
    pub out_dst_mac: Option<String>,
}

/// Sets a frame's destination and source MAC: the two-NIC forwarder's
/// per-frame work.
pub fn set_macs(f: &mut [u8], dst: &[u8; 6], src: &[u8; 6]) -> bool {
    if f.len() < 14 {
        return false;
    }
    f[0..6].copy_from_slice(dst);
    f[6..12].copy_from_slice(src);
    true
}

/// Swaps destination and source MAC: the whole per-frame work.
pub fn swap_macs(f: &mut [u8]) -> bool {
    if f.len() < 14 {
        return false;
    }
    let mut dst = [0u8; 6];
    dst.copy_from_slice(&f[0..6]);
    f.copy_within(6..12, 0);
    f[6..12].copy_from_slice(&dst);
    true
}

#[derive(Default)]
struct Counts {
    rx: AtomicU64,
    tx: AtomicU64,
    tx_ring_full: AtomicU64,
    kernel_rx_dropped: AtomicU64,
}

fn worker(
    mut p: Port,
    macs: Option<([u8; 6], [u8; 6])>,
    c: Arc<Counts>,
    stop: Arc<AtomicBool>,
    spin: Duration,
) -> Result<()> {
    let (mut rx, mut tx) = (0u64, 0u64);
    let mut last_busy = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        p.service()?;
        let got = match &macs {
            None => p.receive(swap_macs),
            Some((dst, src)) => p.receive(|f| set_macs(f, dst, src)),
        };
        rx += got as u64;
        tx += p.flush()? as u64;
        // lvsfwd's idle policy: poll for `spin` after the last frame, then
        // sleep in `poll` (one clock read per round, as its worker).
        let now = Instant::now();
        if got > 0 {
            last_busy = now;
        } else if now - last_busy >= spin {
            p.wait(IDLE_POLL_MS)?;
            last_busy = Instant::now();
        }
    }
    if std::env::var_os("LVSFWD_ROUND_STATS").is_some() {
        // The thread's context switches, as lvsfwd's workers report them.
        let st = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
        let get = |k: &str| {
            st.lines()
                .find_map(|l| l.strip_prefix(k))
                .map_or("?", str::trim)
                .to_string()
        };
        eprintln!(
            "rawfwd worker {}: context switches voluntary {} involuntary {}",
            p.queue(),
            get("voluntary_ctxt_switches:"),
            get("nonvoluntary_ctxt_switches:")
        );
    }
    c.rx.fetch_add(rx, Ordering::Relaxed);
    c.tx.fetch_add(tx, Ordering::Relaxed);
    c.tx_ring_full
        .fetch_add(p.tx_ring_full(), Ordering::Relaxed);
    if let Ok(st) = p.statistics() {
        c.kernel_rx_dropped
            .fetch_add(st.rx_dropped + st.rx_ring_full, Ordering::Relaxed);
    }
    Ok(())
}

pub fn run(a: &RawArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }
    let mut prog = XdpProgram::attach(&a.iface, XdpMode::Auto)?;
    let vip = IpAddr::V4(a.vip);
    prog.set_filter(&Filter {
        services: vec![(Protocol::Tcp, vip, a.port), (Protocol::Udp, vip, a.port)],
        vips: vec![vip],
        ..Filter::default()
    })?;
    let counts = Arc::new(Counts::default());
    let macs = match (&a.out_dst_mac, &a.out_src_mac) {
        (Some(d), Some(s)) => Some((parse_mac(d)?, parse_mac(s)?)),
        _ => None,
    };
    let mut threads = Vec::new();
    for (i, &q) in a.queues.iter().enumerate() {
        let o = PortOptions {
            ifname: &a.iface,
            queue: q,
            frames: a.frames,
            zero_copy: ZeroCopy::Auto,
            batch: a.batch,
            tx_reserve: 0,
        };
        let p = match &a.out_iface {
            Some(out) => Port::open_pair(&o, out)?,
            None => Port::open(&o)?,
        };
        prog.register_socket(q, p.fd())?;
        let core = a.cores.get(i).copied().unwrap_or((i + 1) % 2);
        let (c, s) = (Arc::clone(&counts), Arc::clone(&stop));
        let spin = Duration::from_micros(a.idle_spin_us);
        threads.push(
            std::thread::Builder::new()
                .name(format!("rawfwd-q{q}"))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        log::warn!("rawfwd: could not pin queue {q} to core {core}");
                    }
                    worker(p, macs, c, s, spin)
                })?,
        );
    }
    eprintln!("ready");
    let mut first_err = None;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(anyhow::anyhow!("a worker panicked"));
            }
        }
    }
    println!(
        "counters {{\"rx\":{},\"tx\":{},\"tx_ring_full\":{},\"kernel_rx_dropped\":{}}}",
        counts.rx.load(Ordering::Relaxed),
        counts.tx.load(Ordering::Relaxed),
        counts.tx_ring_full.load(Ordering::Relaxed),
        counts.kernel_rx_dropped.load(Ordering::Relaxed)
    );
    prog.detach()?;
    first_err.map_or(Ok(()), Err)
}
