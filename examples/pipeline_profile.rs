//! A fixed workload for instruction-level profiling of the per-packet
//! pipeline (the criterion benches measure time, which on a shared machine
//! is noisy; instruction counts are not).
//!
//! `pipeline_profile <DR|TUN|NAT|FULLNAT> <hit|new> <packets>`: sets up a
//! data plane with 10k established flows like `benches/dataplane.rs`, then
//! sends `packets` frames through `Dataplane::process`: the same established
//! ACK again and again (`hit`), or SYNs of new flows (`new`). Profile only
//! the pipeline with
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*Dataplane*process*' \
//!     target/release/examples/pipeline_profile DR hit 100000
//! ```
//!
//! and divide the collected instruction count by `packets`.
#![forbid(unsafe_code)]

use std::hint::black_box;

use etherparse::PacketBuilder;

use lvsfwd::config;
use lvsfwd::dataplane::{Dataplane, DataplaneConfig, Verdict};
use lvsfwd::time::Timestamp;
use lvsfwd::wire::FrameBuf;

const HEADROOM: usize = 256;

fn dataplane(kind: &str) -> Dataplane {
    let local = if kind == "FULLNAT" {
        "local_address = [\"198.18.9.1\", \"198.18.9.2\"]\n"
    } else {
        ""
    };
    let mut text = format!(
        "[global]\ninterface = \"bench\"\nconn_max = 262144\n\n[[virtual_server]]\naddress = \"198.18.0.250:80\"\nprotocol = \"TCP\"\nlb_algo = \"wlc\"\nlb_kind = \"{kind}\"\n{local}"
    );
    for n in 11..=14 {
        text += &format!(
            "  [[virtual_server.real_server]]\n  address = \"198.18.1.{n}:80\"\n  weight = {}\n  mac = \"02:5e:00:00:00:{n:02x}\"\n",
            n - 10
        );
    }
    let cfg = config::parse_str(&text, "profile.toml").expect("config is valid");
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

fn run(dp: &mut Dataplane, mem: &mut [u8], frame: &[u8], now: Timestamp) -> Verdict {
    mem[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut f = FrameBuf::new(mem, HEADROOM, frame.len());
    dp.process(&mut f, now)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (kind, mode, packets) = match &args[..] {
        [_, k, m, n] => (k.as_str(), m.as_str(), n.parse::<u32>().expect("packets")),
        _ => {
            eprintln!("usage: pipeline_profile <DR|TUN|NAT|FULLNAT> <hit|new> <packets>");
            std::process::exit(2);
        }
    };
    let mut dp = dataplane(kind);
    let mut mem = vec![0u8; HEADROOM + 2048];
    let mut now = Timestamp::from_secs(1);
    for i in 0..10_000u32 {
        let src = [198, 18, 100 + (i / 250) as u8, (i % 250) as u8 + 1];
        assert_eq!(
            run(&mut dp, &mut mem, &segment(src, 40000, true), now),
            Verdict::Tx
        );
        assert_eq!(
            run(&mut dp, &mut mem, &segment(src, 40000, false), now),
            Verdict::Tx
        );
    }
    let mut tx = 0u32;
    match mode {
        "hit" => {
            let hit = segment([198, 18, 110, 7], 40000, false);
            for _ in 0..packets {
                dp.tick(now);
                tx += u32::from(run(&mut dp, &mut mem, black_box(&hit), now) == Verdict::Tx);
            }
        }
        "new" => {
            // Frames are built outside the profiled function; 1 ms a packet.
            let frames: Vec<Vec<u8>> = (1..=packets)
                .map(|n| {
                    let src = [198, 18, 200 + ((n >> 16) & 0x3f) as u8, (n >> 8) as u8];
                    segment(src, (n as u16) | 1024, true)
                })
                .collect();
            for f in &frames {
                now = Timestamp::from_nanos(now.as_nanos() + 1_000_000);
                dp.tick(now);
                tx += u32::from(run(&mut dp, &mut mem, f, now) == Verdict::Tx);
            }
        }
        other => panic!("unknown mode {other}"),
    }
    println!("{kind} {mode}: {tx} of {packets} transmitted");
}
