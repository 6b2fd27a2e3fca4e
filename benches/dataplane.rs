//! Per-packet cost of the data-plane core, in ns per packet
//! (`Throughput::Elements(1)`): an established-flow hit for every forwarding
//! method, a new connection for every scheduler, and the rewrites alone.
//!
//! Each iteration copies a 64-byte-class frame into a buffer with headroom
//! (as a UMEM frame would hold it) and runs it through the real pipeline; the
//! copy is part of the figure and costs a few ns.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;

use lvsfwd::config;
use lvsfwd::dataplane::{Dataplane, DataplaneConfig, Verdict};
use lvsfwd::forward::{self, Rewrite};
use lvsfwd::sched::SchedKind;
use lvsfwd::time::Timestamp;
use lvsfwd::wire::{self, FrameBuf};

const HEADROOM: usize = 256;

fn dataplane(kind: &str, algo: &str) -> Dataplane {
    let local = if kind == "FULLNAT" {
        "local_address = [\"198.18.9.1\", \"198.18.9.2\"]\n"
    } else {
        ""
    };
    let mut text = format!(
        "[global]\ninterface = \"bench\"\nconn_max = 262144\n\n[[virtual_server]]\naddress = \"198.18.0.250:80\"\nprotocol = \"TCP\"\nlb_algo = \"{algo}\"\nlb_kind = \"{kind}\"\n{local}"
    );
    for n in 11..=14 {
        text += &format!(
            "  [[virtual_server.real_server]]\n  address = \"198.18.1.{n}:80\"\n  weight = {}\n  mac = \"02:5e:00:00:00:{n:02x}\"\n",
            n - 10
        );
    }
    let cfg = config::parse_str(&text, "bench.toml").expect("bench config is valid");
    Dataplane::from_config(
        &cfg,
        DataplaneConfig {
            own_addrs: vec!["198.18.0.2".parse().unwrap()],
            ..DataplaneConfig::from_config(&cfg)
        },
    )
}

fn segment(src: [u8; 4], sport: u16, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0xc1, 0, 0, 0, 1], [2, 0xd1, 0, 0, 0, 1])
        .ipv4(src, [198, 18, 0, 250], 64)
        .tcp(sport, 80, 1, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 6]).unwrap();
    v
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
    fn run(&mut self, dp: &mut Dataplane, frame: &[u8], now: Timestamp) -> Verdict {
        self.mem[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut f = FrameBuf::new(&mut self.mem, HEADROOM, frame.len());
        dp.process(&mut f, now)
    }
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("established_hit");
    g.throughput(Throughput::Elements(1));
    for kind in ["DR", "TUN", "NAT", "FULLNAT"] {
        let mut dp = dataplane(kind, "wlc");
        let mut buf = Buf::new();
        let now = Timestamp::from_secs(1);
        // 10k established flows, then hit one of them over and over.
        for i in 0..10_000u32 {
            let src = [198, 18, 100 + (i / 250) as u8, (i % 250) as u8 + 1];
            assert_eq!(
                buf.run(&mut dp, &segment(src, 40000, true), now),
                Verdict::Tx
            );
            assert_eq!(
                buf.run(&mut dp, &segment(src, 40000, false), now),
                Verdict::Tx
            );
        }
        let hit = segment([198, 18, 110, 7], 40000, false);
        g.bench_function(kind, |b| {
            b.iter(|| {
                dp.tick(now);
                black_box(buf.run(&mut dp, black_box(&hit), now))
            })
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
        let mut now = Timestamp::from_secs(1);
        let mut n: u32 = 0;
        g.bench_function(kind.name(), |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                now = Timestamp::from_nanos(now.as_nanos() + 1_000_000);
                dp.tick(now);
                let src = [198, 18, 100 + ((n >> 16) & 0x3f) as u8, (n >> 8) as u8];
                let syn = segment(src, (n as u16) | 1024, true);
                black_box(buf.run(&mut dp, &syn, now))
            })
        });
    }
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

criterion_group!(benches, established, new_connection, rewrites);
criterion_main!(benches);
