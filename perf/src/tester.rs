//! `lvsperf tester`: the traffic generator and the sink in one pinned
//! thread, over AF_XDP sockets on the tester's NIC (one per queue; all
//! receive, the first `tx_queues` also send).
//!
//! Phases: *open* (TCP mixes only: every established flow sends its SYN,
//! closed-loop: at most [`OPEN_WINDOW`] frames outstanding, so no SYN is
//! lost to overload and every flow really has a connection in the DUT),
//! *warm-up* (full traffic, not counted), the measured *window* (`mark
//! start` / `mark end` lines on stdout, for the orchestrator's CPU
//! sampling), then *drain* (no sending; late frames of the window still
//! count). Finally one line `result {json}` ([`TesterResult`]).
//!
//! lvsfwd's own XDP program sorts the tester's RX: frames to the `--sink`
//! services go to the sockets, everything else (ARP for the real-server
//! addresses the tester holds) to the kernel. With `--sink-iface` the
//! tester also receives on a second NIC (same queues, same filter): the
//! one a two-NIC DUT forwards out of.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::{IpAddr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lvsfwd::config::{XdpMode, ZeroCopy};
use lvsfwd::service::Protocol;
use lvsfwd::xsk::engine::monotonic_now;
use lvsfwd::xsk::port::{Port, PortOptions};
use lvsfwd::xsk::prog::{Filter, XdpProgram};
use lvsfwd_perf::packet::{Flows, Generator, Kind, Mix, Template};
use lvsfwd_perf::stats::{Sink, TesterResult, Window};

/// Most frames outstanding while flows open.
const OPEN_WINDOW: u64 = 256;
/// An opening round that got no frame back for this long writes its
/// outstanding frames off as lost (a DUT that drops some SYNs for good).
const OPEN_STALL: Duration = Duration::from_millis(20);
/// Most receive batches per queue and round.
const RX_BATCHES: usize = 8;
/// Bound of the open phase.
const OPEN_MAX: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug, Clone)]
pub struct TesterArgs {
    /// The tester's NIC (in the calling network namespace).
    #[arg(long)]
    pub iface: String,
    /// Queues to open sockets on (all receive).
    #[arg(long, default_value_t = 1)]
    pub rx_queues: u32,
    /// The first N of them also send.
    #[arg(long, default_value_t = 1)]
    pub tx_queues: u32,
    #[arg(long, default_value_t = 0)]
    pub core: usize,
    #[arg(long)]
    pub src_mac: String,
    /// The DUT's MAC.
    #[arg(long)]
    pub dst_mac: String,
    /// The virtual service.
    #[arg(long)]
    pub dst: SocketAddrV4,
    /// Frame size, FCS included (64..=1518).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// tcp, tcp+N%new, syn, udp.
    #[arg(long, default_value = "tcp")]
    pub mix: String,
    #[arg(long, default_value_t = 10_000)]
    pub flows: u32,
    #[arg(long, default_value_t = 1024)]
    pub sport_base: u16,
    /// Number of the first brand-new connection (keep ranges disjoint).
    #[arg(long, default_value_t = 0)]
    pub new_base: u64,
    /// Frames per second over all queues; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    #[arg(long, default_value_t = 1000)]
    pub warmup_ms: u64,
    #[arg(long, default_value_t = 3000)]
    pub duration_ms: u64,
    #[arg(long, default_value_t = 200)]
    pub drain_ms: u64,
    /// Open established TCP flows with an ACK instead of a SYN ("ack").
    #[arg(long = "open-with", value_parser = ["syn", "ack"], default_value = "syn")]
    pub open_with: String,
    /// Also receive on this NIC (the far end of a two-NIC DUT's second
    /// link), on `rx_queues` queues.
    #[arg(long)]
    pub sink_iface: Option<String>,
    /// Services whose frames come to the sink: tcp:IP:PORT or udp:IP:PORT.
    #[arg(long = "sink", required = true)]
    pub sinks: Vec<String>,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// UMEM frames per socket: a quarter for sending, the rest for
    /// receiving, more than a DUT's rings can hold, so that a DUT draining
    /// its queues in a burst cannot overrun the tester.
    #[arg(long, default_value_t = 16384)]
    pub frames: u32,
}

pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC {s:?}"))?;
    v.try_into().map_err(|_| anyhow::anyhow!("bad MAC {s:?}"))
}

fn parse_sink(s: &str) -> Result<(Protocol, IpAddr, u16)> {
    let (p, rest) = s.split_once(':').context("sink is PROTO:IP:PORT")?;
    let proto = match p {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => bail!("sink protocol {p:?}: tcp or udp"),
    };
    let a: SocketAddrV4 = rest.parse().with_context(|| format!("sink {s:?}"))?;
    Ok((proto, IpAddr::V4(*a.ip()), a.port()))
}

fn now_ns() -> u64 {
    monotonic_now().as_nanos()
}

fn say(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

#[derive(PartialEq, Eq)]
enum Phase {
    Open,
    Run,
}

pub fn run(a: &TesterArgs) -> Result<()> {
    let mix = Mix::parse(&a.mix)?;
    let tpl = Template::new(
        a.size,
        mix.is_udp(),
        parse_mac(&a.src_mac)?,
        parse_mac(&a.dst_mac)?,
        a.dst,
    )?;
    let flows = Flows::new(a.flows, a.sport_base)?;
    anyhow::ensure!(
        (1..=a.rx_queues).contains(&a.tx_queues),
        "tx queues must be 1..=rx queues"
    );
    let services = a
        .sinks
        .iter()
        .map(|s| parse_sink(s))
        .collect::<Result<Vec<_>>>()?;

    // The sending NIC's ports first: generator q sends on ports[q].
    let mut progs = Vec::new();
    let mut ports = Vec::new();
    for (i, ifname) in std::iter::once(&a.iface)
        .chain(a.sink_iface.as_ref())
        .enumerate()
    {
        let mut prog = XdpProgram::attach(ifname, XdpMode::Auto)?;
        prog.set_filter(&Filter {
            services: services.clone(),
            ..Filter::default()
        })?;
        for q in 0..a.rx_queues {
            let p = Port::open(&PortOptions {
                ifname,
                queue: q,
                frames: a.frames,
                zero_copy: ZeroCopy::Auto,
                batch: a.batch,
                // The sink-only NIC's ports never send.
                tx_reserve: if i == 0 { a.frames as usize / 4 } else { 0 },
            })?;
            prog.register_socket(q, p.fd())?;
            ports.push(p);
        }
        progs.push(prog);
    }
    if !core_affinity::set_for_current(core_affinity::CoreId { id: a.core }) {
        log::warn!("tester: could not pin to core {}", a.core);
    }
    let ntx = a.tx_queues;
    let mut gens: Vec<Generator> = (0..ntx)
        .map(|q| {
            Generator::new(
                tpl.clone(),
                flows,
                mix,
                q,
                ntx,
                a.new_base + u64::from(q) * 20_000_000,
            )
            .open_with(if a.open_with == "ack" {
                Kind::Ack
            } else {
                Kind::Syn
            })
        })
        .collect();

    let mut sink = Sink::new();
    let (mut tx_total, mut tx_window) = (0u64, 0u64);
    let mut phase = if matches!(mix, Mix::Tcp { .. }) {
        Phase::Open
    } else {
        Phase::Run
    };
    let open_start = now_ns();
    let mut written_off = 0u64;
    let mut last_progress = (open_start, 0u64);
    // Set when the open phase ends.
    let mut t0 = open_start;
    let mut w = Window {
        start_ns: t0 + a.warmup_ms * 1_000_000,
        end_ns: t0 + (a.warmup_ms + a.duration_ms) * 1_000_000,
    };
    let mut sent_since_t0 = 0u64;
    let (mut marked_start, mut marked_end) = (false, false);
    let never = Window {
        start_ns: 0,
        end_ns: 0,
    };

    loop {
        let now = now_ns();
        if phase == Phase::Run {
            if now >= w.end_ns + a.drain_ms * 1_000_000 {
                break;
            }
            if !marked_start && now >= w.start_ns {
                marked_start = true;
                say("mark start");
            }
            if !marked_end && now >= w.end_ns {
                marked_end = true;
                say("mark end");
            }
        } else if now - open_start > OPEN_MAX.as_nanos() as u64 {
            bail!("flows did not open within {OPEN_MAX:?}");
        }

        // Transmit.
        let mut budget: u64 = match phase {
            Phase::Open => {
                let out = tx_total.saturating_sub(sink.rx_total + written_off);
                if sink.rx_total != last_progress.1 {
                    last_progress = (now, sink.rx_total);
                } else if out > 0 && now - last_progress.0 > OPEN_STALL.as_nanos() as u64 {
                    written_off += out;
                    last_progress = (now, sink.rx_total);
                }
                OPEN_WINDOW.saturating_sub(out)
            }
            Phase::Run if now >= w.end_ns => 0,
            Phase::Run if a.rate == 0 => u64::MAX,
            Phase::Run => {
                let due = u128::from(a.rate) * u128::from(now - t0) / 1_000_000_000;
                (due as u64).saturating_sub(sent_since_t0)
            }
        };
        for (q, g) in gens.iter_mut().enumerate() {
            let p = &mut ports[q];
            p.service()?;
            let mut n = budget.min(a.batch as u64) as usize;
            if phase == Phase::Open && !g.opening() {
                n = 0;
            }
            if n > 0 {
                let stamp = now_ns();
                p.send_new(n, |buf| g.write_next(buf, stamp));
                let sent = p.flush()? as u64;
                tx_total += sent;
                if phase == Phase::Run {
                    sent_since_t0 += sent;
                    if w.contains(stamp) {
                        tx_window += sent;
                    }
                }
                budget = budget.saturating_sub(sent);
            } else {
                p.flush()?;
            }
        }

        // Receive on every queue; drain a busy one (several batches) so
        // that the tester's own RX ring is not where frames get lost.
        let win = if phase == Phase::Run { &w } else { &never };
        for p in ports.iter_mut() {
            for _ in 0..RX_BATCHES {
                p.service()?;
                let t = now_ns();
                let got = p.receive(|f| {
                    sink.record(f, t, win);
                    false
                });
                if got < a.batch {
                    break;
                }
            }
        }

        if phase == Phase::Open && gens.iter().all(|g| !g.opening()) {
            // Give the last SYNs a moment to land before full traffic.
            phase = Phase::Run;
            t0 = now_ns();
            w = Window {
                start_ns: t0 + a.warmup_ms * 1_000_000,
                end_ns: t0 + (a.warmup_ms + a.duration_ms) * 1_000_000,
            };
            eprintln!(
                "tester: {} flows opened in {:.2} s ({} frames written off)",
                flows.count,
                (t0 - open_start) as f64 / 1e9,
                written_off
            );
        }
    }

    let mut rx_kernel_dropped = 0;
    let mut tx_ring_full = 0;
    for p in &ports {
        if let Ok(st) = p.statistics() {
            rx_kernel_dropped += st.rx_dropped + st.rx_ring_full;
        }
        tx_ring_full += p.tx_ring_full();
    }
    let r = TesterResult {
        window_s: w.secs(),
        tx: tx_window,
        rx: sink.rx_window,
        tx_total,
        rx_total: sink.rx_total,
        foreign: sink.foreign,
        tx_ring_full,
        rx_kernel_dropped,
        latency: sink.latency(),
    };
    say(&format!("result {}", serde_json::to_string(&r)?));
    drop(ports);
    for prog in progs {
        prog.detach()?;
    }
    Ok(())
}
