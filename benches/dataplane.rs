//! Per-packet cost of the data-plane core, in ns per packet
//! (`Throughput::Elements(1)`): an established-flow hit for every forwarding
//! method as received on a physical NIC (complete checksums, not tested),
//! DR also as received on a veth (every frame's checksum tested for a
//! partial one; with one to complete; and at 1500 bytes), a new connection
//! for every scheduler, and the rewrites alone. The timers run once per
//! 64 frames, as a worker runs them once per round.
//!
//! Each iteration copies a 64-byte-class frame into a buffer with headroom
//! (as a UMEM frame would hold it) and runs it through the real pipeline; the
//! copy is part of the figure and costs a few ns.
//!
//! `conn_table/*`: the connection table alone at 1M and 10M established
//! connections: insert (a new conn scheduled by rr), lookup of a random
//! existing conn, expiry of a timed-out conn; the setup prints the measured
//! memory per connection (resident set growth while filling the table, and
//! the table's own account). Select with e.g. `cargo bench -- conn_table`;
//! the 10M table needs about 1.5 GB.
//!
//! Counting instead of timing: with `LVSFWD_BENCH_COUNT=<n>` and
//! `LVSFWD_BENCH_CASE=dr_hit|dr_veth_hit|new_conn` the binary runs the DR
//! established hit (on a physical NIC, or on a veth), or the rr new
//! connection, of the groups above `n` times and exits,
//! for `perf stat -e instructions:u,cycles:u` (a per-packet figure is the
//! difference of two counts over the difference of their `n`), which a busy
//! machine disturbs far less than it does wall-clock time.
//!
//! `sync/*`: the DR established hit with connection sync off and on
//! (master), see `sync_cost`.
//!
//! `collision_flood/*`: lookups of client tuples built to collide under the
//! public fixed hash seed (their hashes' top 12 bits clear, so their home
//! slots are the first 1/4096 of the index whatever its size), in a table
//! keyed with that seed (`fixed`, what every table used before the daemon
//! drew its seeds) and in one keyed with a seed from
//! `config::os_hash_seeds` (`os`, the daemon's). The setup prints the mean
//! probe distance of each table.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use etherparse::PacketBuilder;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use criterion::SamplingMode;
use lvsfwd::config;
use lvsfwd::conn::{ConnTable, Direction, FIXED_HASH_SEED, NewFlow, TcpFlags, Timeouts};
use lvsfwd::dataplane::{Dataplane, DataplaneConfig, Verdict};
use lvsfwd::forward::{self, Rewrite};
use lvsfwd::hint::{Batch, pipeline};
use lvsfwd::sched::SchedKind;
use lvsfwd::service::{Protocol, ServiceTable};
use lvsfwd::time::Timestamp;
use lvsfwd::wire::{self, FrameBuf};

const HEADROOM: usize = 256;

/// Received on a physical NIC: frames arrive with complete checksums and
/// the data plane does not test them (`DataplaneConfig::partial_csum_nics`).
fn dataplane(kind: &str, algo: &str) -> Dataplane {
    dataplane_on(kind, algo, false)
}

fn dataplane_on(kind: &str, algo: &str, virtual_nic: bool) -> Dataplane {
    dataplane_sized(kind, algo, virtual_nic, 262_144)
}

/// `virtual_nic`: received on a veth (or another NIC that may deliver
/// partial checksums): every TCP/UDP frame's checksum is tested.
fn dataplane_sized(kind: &str, algo: &str, virtual_nic: bool, conn_max: u32) -> Dataplane {
    let local = if kind == "FULLNAT" {
        "local_address = [\"198.18.9.1\", \"198.18.9.2\"]\n"
    } else {
        ""
    };
    let mut text = format!(
        "[global]\ninterface = \"bench\"\nconn_max = {conn_max}\n\n[[virtual_server]]\naddress = \"198.18.0.250:80\"\nprotocol = \"TCP\"\nlb_algo = \"{algo}\"\nlb_kind = \"{kind}\"\n{local}"
    );
    for n in 11..=14 {
        text += &format!(
            "  [[virtual_server.real_server]]\n  address = \"198.18.1.{n}:80\"\n  weight = {}\n  mac = \"02:5e:00:00:00:{n:02x}\"\n",
            n - 10
        );
    }
    let cfg = config::parse_str(&text, "bench.toml").expect("bench config is valid");
    cfg.dataplane(DataplaneConfig {
        own_addrs: vec!["198.18.0.2".parse().unwrap()],
        partial_csum_nics: if virtual_nic { 1 } else { 0 },
        ..cfg.dataplane_config()
    })
}

fn segment(src: [u8; 4], sport: u16, syn: bool) -> Vec<u8> {
    segment_with(src, sport, syn, 6)
}

/// A segment with `payload` bytes of data (6: the 64-byte frame class;
/// 1460: a full 1500-byte packet).
fn segment_with(src: [u8; 4], sport: u16, syn: bool, payload: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0xc1, 0, 0, 0, 1], [2, 0xd1, 0, 0, 0, 1])
        .ipv4(src, [198, 18, 0, 250], 64)
        .tcp(sport, 80, 1, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    let data: Vec<u8> = (0..payload).map(|i| (i * 7 + 1) as u8).collect();
    b.write(&mut v, &data).unwrap();
    v
}

/// `frame` as a sender with checksum offload hands it over: the TCP
/// checksum field holds the pseudo-header sum (CHECKSUM_PARTIAL).
fn partial(mut frame: Vec<u8>) -> Vec<u8> {
    let p = wire::parse(&frame).unwrap().unwrap();
    let len = (p.l3_end() - p.l4_off) as u32;
    let ph = wire::checksum::pseudo(p.src, p.dst, p.proto, len);
    let at = p.l4_off + wire::tcp::field::CHECKSUM.start;
    frame[at..at + 2].copy_from_slice(&ph.to_be_bytes());
    frame
}

struct Buf {
    mem: Vec<u8>,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            mem: vec![0; HEADROOM + 2048],
        }
    }
    /// What `run` costs besides the data plane: restoring the frame (the
    /// pipeline rewrites it in place) and wrapping it.
    fn copy_only(&mut self, frame: &[u8]) -> usize {
        self.mem[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let f = FrameBuf::new(&mut self.mem, HEADROOM, frame.len());
        black_box(f.len())
    }

    fn run(&mut self, dp: &mut Dataplane, frame: &[u8], now: Timestamp) -> Verdict {
        self.mem[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut f = FrameBuf::new(&mut self.mem, HEADROOM, frame.len());
        dp.process(&mut f, now)
    }
}

/// Frames per worker round: the worker runs the timers (`tick`) once per
/// round, so the benches do too.
const ROUND: u32 = 64;

/// 10k established flows in `dp`; returns the frame of one of them.
fn establish(dp: &mut Dataplane, buf: &mut Buf, now: Timestamp) -> Vec<u8> {
    for i in 0..10_000u32 {
        let src = [198, 18, 100 + (i / 250) as u8, (i % 250) as u8 + 1];
        assert_eq!(buf.run(dp, &segment(src, 40000, true), now), Verdict::Tx(0));
        assert_eq!(
            buf.run(dp, &segment(src, 40000, false), now),
            Verdict::Tx(0)
        );
    }
    segment([198, 18, 110, 7], 40000, false)
}

/// One frame through `dp` as a worker does it: `tick` once per [`ROUND`].
fn hit(dp: &mut Dataplane, buf: &mut Buf, frame: &[u8], now: Timestamp, n: &mut u32) -> Verdict {
    *n = n.wrapping_add(1);
    if (*n).is_multiple_of(ROUND) {
        dp.tick(now);
    }
    buf.run(dp, black_box(frame), now)
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("established_hit");
    g.throughput(Throughput::Elements(1));
    for kind in ["DR", "TUN", "NAT", "FULLNAT"] {
        let mut dp = dataplane(kind, "wlc");
        let mut buf = Buf::new();
        let now = Timestamp::from_secs(1);
        // 10k established flows, then hit one of them over and over.
        let frame = establish(&mut dp, &mut buf, now);
        if kind == "DR" {
            // The baseline inside every figure of this group: subtract it
            // for the data plane's own cost.
            g.bench_function("harness_frame_copy", |b| {
                b.iter(|| buf.copy_only(black_box(&frame)))
            });
        }
        let mut n = 0;
        g.bench_function(kind, |b| {
            b.iter(|| black_box(hit(&mut dp, &mut buf, &frame, now, &mut n)))
        });
    }
    // DR received on a veth (containers, pods, this project's rigs): every
    // frame's checksum is tested for a partial one, and with one (the
    // sender's checksum offload) the segment is summed to complete it; the
    // same at full size, where that sum costs the most.
    let mut dp = dataplane_on("DR", "wlc", true);
    let mut buf = Buf::new();
    let now = Timestamp::from_secs(1);
    let small = establish(&mut dp, &mut buf, now);
    let full = segment_with([198, 18, 110, 7], 40000, false, 1460);
    let frames = [
        ("DR_veth", small.clone()),
        ("DR_veth_partial_csum", partial(small)),
        ("DR_veth_1500", full.clone()),
        ("DR_veth_1500_partial_csum", partial(full)),
    ];
    for (name, frame) in frames {
        let before = dp.counters.partial_csum;
        assert_eq!(buf.run(&mut dp, &frame, now), Verdict::Tx(0));
        let completed = dp.counters.partial_csum - before;
        assert_eq!(completed, u64::from(name.ends_with("partial_csum")));
        let mut n = 0;
        g.bench_function(name, |b| {
            b.iter(|| black_box(hit(&mut dp, &mut buf, &frame, now, &mut n)))
        });
    }
    g.finish();
}

fn new_connection(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_connection");
    g.throughput(Throughput::Elements(1));
    for kind in SchedKind::ALL {
        let mut dp = dataplane("DR", kind.name());
        let mut buf = Buf::new();
        // Every SYN is a new client port; the clock advances 1 ms a packet,
        // so SYN_RECV entries (60 s) expire and the table stays near 60k.
        // The frames are built beforehand (building one costs more than
        // forwarding it); 65536 tuples outlast the 60 s a SYN_RECV entry
        // lives, so a tuple comes back only after its entry expired.
        let syns: Vec<Vec<u8>> = (0..65_536u32)
            .map(|n| {
                let src = [198, 18, 100 + ((n >> 12) & 0x0f) as u8, (n >> 4) as u8];
                segment(src, 1024 + (n & 0x0f) as u16, true)
            })
            .collect();
        let mut now = Timestamp::from_secs(1);
        let mut n: usize = 0;
        g.bench_function(kind.name(), |b| {
            b.iter(|| {
                n = (n + 1) % syns.len();
                now = Timestamp::from_nanos(now.as_nanos() + 1_000_000);
                dp.tick(now);
                black_box(buf.run(&mut dp, &syns[n], now))
            })
        });
    }
    g.finish();
}

/// A new connection to a fwmark service whose rule is the last of eight
/// (the classification scan's worst case for a handful of rules), beside
/// `new_connection/rr` to an address service.
fn new_connection_fwmark(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_connection_fwmark");
    g.throughput(Throughput::Elements(1));
    let mut text = String::from("[global]\ninterface = \"bench\"\nconn_max = 262144\n");
    for m in 1..=8 {
        let rule = if m == 8 {
            "TCP 198.18.0.250:80".to_string()
        } else {
            format!("TCP 198.18.0.{}:443", 240 + m)
        };
        text += &format!("\n[[fwmark]]\nmark = {m}\nmatch = [\"{rule}\"]\n");
        text +=
            &format!("\n[[virtual_server]]\nfwmark = {m}\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n");
        for n in 11..=14 {
            text += &format!(
                "  [[virtual_server.real_server]]\n  address = \"198.18.1.{n}\"\n  mac = \"02:5e:00:00:00:{n:02x}\"\n"
            );
        }
    }
    let cfg = config::parse_str(&text, "bench.toml").expect("bench config is valid");
    let mut dp = cfg.dataplane(DataplaneConfig {
        own_addrs: vec!["198.18.0.2".parse().unwrap()],
        ..cfg.dataplane_config()
    });
    let mut buf = Buf::new();
    let syns: Vec<Vec<u8>> = (0..65_536u32)
        .map(|n| {
            let src = [198, 18, 100 + ((n >> 12) & 0x0f) as u8, (n >> 4) as u8];
            segment(src, 1024 + (n & 0x0f) as u16, true)
        })
        .collect();
    let mut now = Timestamp::from_secs(1);
    assert_eq!(buf.run(&mut dp, &syns[0], now), Verdict::Tx(0));
    let mut n: usize = 0;
    g.bench_function("rr_last_of_8_rules", |b| {
        b.iter(|| {
            n = (n + 1) % syns.len();
            now = Timestamp::from_nanos(now.as_nanos() + 1_000_000);
            dp.tick(now);
            black_box(buf.run(&mut dp, &syns[n], now))
        })
    });
    g.finish();
}

fn rewrites(c: &mut Criterion) {
    let mut g = c.benchmark_group("rewrite");
    g.throughput(Throughput::Elements(1));
    let frame = segment([198, 18, 100, 1], 40000, false);
    let p = wire::parse(&frame).unwrap().unwrap();
    let mut mem = vec![0u8; HEADROOM + 2048];
    let smac = [2, 0xd1, 0, 0, 0, 1];
    let dmac = [2, 0x5e, 0, 0, 0, 11];
    let rip = "198.18.1.11".parse().unwrap();
    let laddr = "198.18.9.1".parse().unwrap();
    let mut run = |name: &str, f: &mut dyn FnMut(&mut FrameBuf)| {
        g.bench_function(name, |b| {
            b.iter(|| {
                mem[HEADROOM..HEADROOM + frame.len()].copy_from_slice(&frame);
                let mut fb = FrameBuf::new(&mut mem, HEADROOM, frame.len());
                f(&mut fb);
                black_box(fb.len())
            })
        });
    };
    run("parse", &mut |fb| {
        black_box(wire::parse(fb.data()).ok());
    });
    run("DR", &mut |fb| forward::route(fb, &p, smac, dmac));
    run("TUN", &mut |fb| {
        let _ = forward::tunnel(
            fb,
            &p,
            "198.18.0.2".parse().unwrap(),
            rip,
            smac,
            dmac,
            1500,
            7,
        );
    });
    run("NAT", &mut |fb| {
        let rw = Rewrite {
            src: None,
            dst: Some((rip, 8080)),
        };
        forward::rewrite(fb, &p, &rw, smac, dmac)
    });
    run("FULLNAT", &mut |fb| {
        let rw = Rewrite {
            src: Some((laddr, 5000)),
            dst: Some((rip, 8080)),
        };
        forward::rewrite(fb, &p, &rw, smac, dmac)
    });
    g.finish();
}

/// Resident set size of this process, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm resident field");
    pages * 4096
}

fn services(algo: &str) -> ServiceTable {
    let mut text = format!(
        "[global]\ninterface = \"bench\"\n\n[[virtual_server]]\naddress = \"198.18.0.250:80\"\nprotocol = \"TCP\"\nlb_algo = \"{algo}\"\nlb_kind = \"DR\"\n"
    );
    for n in 11..=14 {
        text += &format!("  [[virtual_server.real_server]]\n  address = \"198.18.1.{n}:80\"\n");
    }
    let cfg = config::parse_str(&text, "bench.toml").expect("bench config is valid");
    ServiceTable::from_specs(&cfg.service_specs())
}

/// Client `i` of the table's steady population (distinct for every i < 2^30).
fn client(i: u32) -> (IpAddr, u16) {
    (
        IpAddr::V4((0x0a00_0000 | (i >> 6)).into()),
        10_000 + (i & 63) as u16,
    )
}

const VIP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 250));

fn syn(caddr: IpAddr, cport: u16) -> NewFlow {
    NewFlow {
        proto: Protocol::Tcp,
        caddr,
        cport,
        vaddr: VIP,
        vport: 80,
        client_mac: [2, 0, 0, 0, 0, 1],
        client_nic: 0,
        tcp: Some(TcpFlags::SYN),
    }
}

/// A table of `n` ESTABLISHED conns (timeout 10 days, so the SYN_RECV
/// conns the insert/expiry benches add can be timed out by moving the
/// clock 61 s without touching them), with room for `extra` more.
fn filled_table(svcs: &mut ServiceTable, n: u32, extra: u32) -> (ConnTable, u64) {
    let rss0 = rss_bytes();
    let mut t = ConnTable::new((n + extra) as usize, Timeouts::default());
    t.set_timeouts(Timeouts {
        tcp: Duration::from_secs(864_000),
        ..Timeouts::default()
    });
    let now = Timestamp::from_secs(1);
    for i in 0..n {
        let (c, p) = client(i);
        let id = t
            .schedule(svcs, 0, &syn(c, p), 60, now, u64::from(i))
            .expect("room");
        t.on_packet(id, Direction::In, Some(TcpFlags::ACK), 52, now, svcs);
    }
    let grown = rss_bytes().saturating_sub(rss0);
    (t, grown)
}

fn conn_table(c: &mut Criterion) {
    let mut g = c.benchmark_group("conn_table");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    // Room for the conns one insert/expiry chunk adds above the population.
    const CHUNK: u32 = 1 << 20;
    for (label, n) in [("1M", 1_000_000u32), ("10M", 10_000_000)] {
        // Filled on first use, so a filter that skips these benches also
        // skips building a 1.5 GB table.
        let mut state: Option<(ServiceTable, ConnTable)> = None;
        let ready = |state: &mut Option<(ServiceTable, ConnTable)>| {
            if state.is_none() {
                let mut svcs = services("rr");
                let (t, grown) = filled_table(&mut svcs, n, CHUNK);
                println!(
                    "conn_table/{label}: {} conns, resident set grew {} bytes = {:.1} bytes/conn \
                     (table's own account {:.1} bytes/conn at capacity {})",
                    t.len(),
                    grown,
                    grown as f64 / f64::from(n),
                    t.memory_bytes() as f64 / f64::from(n),
                    t.capacity()
                );
                *state = Some((svcs, t));
            }
        };
        let mut now = Timestamp::from_secs(1);
        let mut next: u32 = 0;
        // Adds `k` new SYN_RECV conns (timeout 60 s) at `now`.
        let mut add = |t: &mut ConnTable, svcs: &mut ServiceTable, now: Timestamp, k: u32| {
            for _ in 0..k {
                next = next.wrapping_add(1);
                let c = IpAddr::V4((0x0b00_0000 | (next >> 6)).into());
                let f = syn(c, 20_000 + (next & 63) as u16);
                black_box(t.schedule(svcs, 0, &f, 60, now, u64::from(next)).ok());
            }
        };
        g.bench_function(format!("insert/{label}"), |b| {
            ready(&mut state);
            let (svcs, t) = state.as_mut().expect("filled");
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(u64::from(CHUNK)) as u32;
                    let t0 = Instant::now();
                    add(t, svcs, now, k);
                    spent += t0.elapsed();
                    left -= u64::from(k);
                    // Untimed: time the chunk out again.
                    now = now + Duration::from_secs(61);
                    t.expire(now, svcs);
                    assert_eq!(t.len(), n as usize);
                }
                spent
            })
        });
        g.bench_function(format!("expire/{label}"), |b| {
            ready(&mut state);
            let (svcs, t) = state.as_mut().expect("filled");
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(u64::from(CHUNK)) as u32;
                    add(t, svcs, now, k);
                    now = now + Duration::from_secs(61);
                    let t0 = Instant::now();
                    let freed = t.expire(now, svcs);
                    spent += t0.elapsed();
                    assert_eq!(freed, k as usize);
                    left -= u64::from(k);
                }
                spent
            })
        });
        let mut x: u32 = 1;
        g.bench_function(format!("lookup/{label}"), |b| {
            ready(&mut state);
            let (_, t) = state.as_mut().expect("filled");
            b.iter(|| {
                // xorshift: a random member of the population, so the index
                // and slab accesses miss the cache as real traffic does.
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let (c, p) = client(x % n);
                black_box(t.lookup_in(Protocol::Tcp, c, p, VIP, 80))
            })
        });
        drop(state);
    }
    g.finish();
}

/// `n` tuples whose hash under [`FIXED_HASH_SEED`] has its top 12 bits
/// clear: what a client who read the source can precompute (about
/// `n * 4096` hashes of brute force).
fn fixed_seed_flood(n: usize) -> Vec<(IpAddr, u16)> {
    let probe = ConnTable::with_seed(1, Timeouts::default(), FIXED_HASH_SEED);
    (0u32..)
        .map(client)
        .filter(|&(c, p)| probe.hash_in(Protocol::Tcp, c, p, VIP, 80) >> 52 == 0)
        .take(n)
        .collect()
}

fn collision_flood(c: &mut Criterion) {
    let mut g = c.benchmark_group("collision_flood");
    g.throughput(Throughput::Elements(1));
    const CAP: usize = 65_536;
    let os = config::os_hash_seeds().expect("OS random seed").conn;
    for n in [512usize, 4096] {
        // Built on first use, so a filter that skips the group skips the
        // brute force too.
        let mut flood: Option<Vec<(IpAddr, u16)>> = None;
        for (label, seed) in [("fixed", FIXED_HASH_SEED), ("os", os)] {
            let mut state: Option<ConnTable> = None;
            let mut x: u32 = 1;
            g.bench_function(format!("{label}/{n}"), |b| {
                let flood = flood.get_or_insert_with(|| fixed_seed_flood(n));
                let t = state.get_or_insert_with(|| {
                    let mut svcs = services("rr");
                    let mut t = ConnTable::with_seed(CAP, Timeouts::default(), seed);
                    let now = Timestamp::from_secs(1);
                    for (i, &(c, p)) in flood.iter().enumerate() {
                        t.schedule(&mut svcs, 0, &syn(c, p), 60, now, i as u64)
                            .expect("room");
                    }
                    let probes: usize = flood
                        .iter()
                        .map(|&(c, p)| t.probes_in(Protocol::Tcp, c, p, VIP, 80))
                        .sum();
                    println!(
                        "collision_flood/{label}/{n}: mean probe distance {:.2} slots",
                        probes as f64 / n as f64
                    );
                    t
                });
                b.iter(|| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let (c, p) = flood[x as usize % n];
                    black_box(t.lookup_in(Protocol::Tcp, c, p, VIP, 80))
                })
            });
        }
    }
    g.finish();
}

/// `sync/*`: the DR established hit with connection sync off and with the
/// master side on (its per-packet count and decision; every 50th packet of
/// the flow makes a record, drained here after each packet as a worker
/// drains after each batch). Both drain, so they differ only by the sync
/// decision.
fn sync_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");
    g.throughput(Throughput::Elements(1));
    for (name, master) in [("DR_hit_sync_off", false), ("DR_hit_sync_master", true)] {
        let mut dp = dataplane("DR", "wlc");
        let mut buf = Buf::new();
        let now = Timestamp::from_secs(1);
        for i in 0..10_000u32 {
            let src = [198, 18, 100 + (i / 250) as u8, (i % 250) as u8 + 1];
            buf.run(&mut dp, &segment(src, 40000, true), now);
            buf.run(&mut dp, &segment(src, 40000, false), now);
        }
        dp.set_sync_mode(master, false);
        let frame = segment([198, 18, 110, 7], 40000, false);
        // The decision works (checked before timing: criterion's test mode
        // runs the timed closure once, fewer packets than a sync period).
        let mut records = 0usize;
        for _ in 0..100 {
            buf.run(&mut dp, &frame, now);
            records += dp.drain_sync().len();
        }
        assert_eq!(records > 0, master, "{name}: {records} records");
        let mut n = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                let v = hit(&mut dp, &mut buf, &frame, now, &mut n);
                black_box(dp.drain_sync().len());
                black_box(v)
            })
        });
    }
    g.finish();
}

/// A worker's received batch, as `hint::pipeline` runs it in the engine:
/// frames of established flows, prefetched in stages ahead of the one
/// processed.
struct BenchBatch<'a> {
    dp: &'a mut Dataplane,
    buf: &'a mut Buf,
    frames: &'a [Vec<u8>],
    now: Timestamp,
}

impl Batch for BenchBatch<'_> {
    fn fetch_item(&self, i: usize) {
        lvsfwd::hint::prefetch_ptr(self.frames[i].as_ptr());
    }
    fn fetch_slots(&self, i: usize) {
        self.dp.prefetch_slots(&self.frames[i]);
    }
    fn fetch_entry(&self, i: usize) {
        self.dp.prefetch_entry(&self.frames[i]);
    }
    fn process(&mut self, i: usize) {
        black_box(self.buf.run(self.dp, &self.frames[i], self.now));
    }
}

/// Client `i` of [`established_batch`]'s flows (198.19.0.0/16, 16 ports).
fn batch_client(i: u32) -> ([u8; 4], u16) {
    (
        [198, 19, (i >> 8) as u8, i as u8],
        40_000 + (i >> 16) as u16,
    )
}

/// Batches of [`ROUND`] frames, each of a random one of `n` established DR
/// flows, through the engine's prefetch pipeline (`hint::pipeline`), one
/// timer tick a batch: the per-frame cost where the connection table is
/// far larger than the caches (1M flows: its index slots and entries
/// miss), against 10k flows (cached). `DR_1M_unpipelined` processes the
/// same batches without the prefetches: what the pipeline hides. The
/// frames come from a pool that stays cached (in the engine the kernel
/// just wrote them, and the pipeline prefetches them too).
fn established_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("established_batch");
    g.throughput(Throughput::Elements(u64::from(ROUND)));
    g.sample_size(20);
    for (label, n) in [("DR_10k", 10_000u32), ("DR_1M", 1_000_000)] {
        // Filled on first use: a filter that skips these skips the fill.
        let mut state: Option<(Dataplane, Vec<Vec<u8>>)> = None;
        let now = Timestamp::from_secs(1);
        let mut buf = Buf::new();
        let fill = |buf: &mut Buf| {
            let mut dp = dataplane_sized("DR", "wlc", false, n + n / 4);
            for i in 0..n {
                let (src, port) = batch_client(i);
                for syn in [true, false] {
                    assert_eq!(
                        buf.run(&mut dp, &segment(src, port, syn), now),
                        Verdict::Tx(0)
                    );
                }
            }
            let mut x: u32 = 0x9e37_79b9;
            let frames = (0..64 * ROUND)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let (src, port) = batch_client(x % n);
                    segment(src, port, false)
                })
                .collect();
            (dp, frames)
        };
        let variants: &[(&str, bool)] = if n > 10_000 {
            &[("", true), ("_unpipelined", false)]
        } else {
            &[("", true)]
        };
        for &(suffix, pipelined) in variants {
            let mut k = 0usize;
            g.bench_function(format!("{label}{suffix}"), |b| {
                let (dp, frames) = state.get_or_insert_with(|| fill(&mut buf));
                b.iter(|| {
                    k = (k + 1) % 64;
                    let batch = &frames[k * ROUND as usize..(k + 1) * ROUND as usize];
                    dp.tick(now);
                    if pipelined {
                        let mut bb = BenchBatch {
                            dp,
                            buf: &mut buf,
                            frames: batch,
                            now,
                        };
                        pipeline(&mut bb, batch.len());
                    } else {
                        for f in batch {
                            black_box(buf.run(dp, f, now));
                        }
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Numbers only: criterion's plots need system fonts, and a missing font
    // would end the run after the first benchmark.
    config = Criterion::default().without_plots();
    targets = established, established_batch, new_connection, new_connection_fwmark, rewrites, conn_table, collision_flood, sync_cost
}
/// The fixed-count mode of the module doc; false when not asked for.
fn counted() -> bool {
    let Some(n) = std::env::var("LVSFWD_BENCH_COUNT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return false;
    };
    let case = std::env::var("LVSFWD_BENCH_CASE").unwrap_or_default();
    let mut buf = Buf::new();
    match case.as_str() {
        "dr_hit" | "dr_veth_hit" => {
            let mut dp = dataplane_on("DR", "wlc", case == "dr_veth_hit");
            let now = Timestamp::from_secs(1);
            let frame = establish(&mut dp, &mut buf, now);
            let mut k = 0;
            for _ in 0..n {
                black_box(hit(&mut dp, &mut buf, &frame, now, &mut k));
            }
        }
        "new_conn" => {
            let mut dp = dataplane("DR", "rr");
            let syns: Vec<Vec<u8>> = (0..65_536u32)
                .map(|n| {
                    let src = [198, 18, 100 + ((n >> 12) & 0x0f) as u8, (n >> 4) as u8];
                    segment(src, 1024 + (n & 0x0f) as u16, true)
                })
                .collect();
            let mut now = Timestamp::from_secs(1);
            // Warm up to the steady state (~60k entries) first.
            for k in 0..(n + 120_000) {
                now = Timestamp::from_nanos(now.as_nanos() + 1_000_000);
                dp.tick(now);
                black_box(buf.run(&mut dp, &syns[k as usize % syns.len()], now));
            }
        }
        other => panic!("LVSFWD_BENCH_CASE {other:?}: dr_hit, dr_veth_hit or new_conn"),
    }
    true
}

fn main() {
    if counted() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
