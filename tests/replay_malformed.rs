//! Hostile and malformed frames through `lvsfwd replay`: every one is
//! dropped and counted by reason (or handed to the kernel when it is not
//! the balancer's), the process never panics, and valid traffic around the
//! garbage is still forwarded.

mod common;
use common::*;

const VIP: &str = "198.18.0.250";

fn cfg() -> String {
    config(&vs4(&format!("{VIP}:80"), "rr", "NAT", &[(11, 80, 1)], ""))
}

fn fix_ipv4_checksum(f: &mut [u8]) {
    let ihl = (f[14] & 0x0f) as usize * 4;
    f[24] = 0;
    f[25] = 0;
    let ck = !naive_sum(&[&f[14..14 + ihl]]);
    f[24..26].copy_from_slice(&ck.to_be_bytes());
}

/// (name, frame) pairs, each malformed in one way.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let good = tcp("198.18.100.1", 40001, VIP, 80, SYN);
    let good6 = tcp("2001:2::100:1", 40001, "2001:2::250", 80, SYN);
    let mut v = Vec::new();
    v.push(("runt", good[..10].to_vec()));
    v.push(("ipv4 cut in header", good[..14 + 12].to_vec()));
    let mut f = good.clone();
    f[14] = 0x43; // IHL 3 < 5
    v.push(("ihl too small", f));
    let mut f = good.clone();
    f[14] = 0x4f; // IHL 15 = 60 bytes, beyond the 40-byte packet
    v.push(("ihl beyond packet", f));
    let mut f = good.clone();
    f[16] = 0xff; // total length 0xff28 > frame
    fix_ipv4_checksum(&mut f);
    v.push(("total length beyond frame", f));
    let mut f = good.clone();
    f[16] = 0;
    f[17] = 10; // total length < header
    fix_ipv4_checksum(&mut f);
    v.push(("total length below header", f));
    let mut f = good.clone();
    f[24] ^= 0x55;
    v.push(("bad ipv4 header checksum", f));
    let mut f = good.clone();
    f.truncate(14 + 20 + 10);
    f[16..18].copy_from_slice(&30u16.to_be_bytes());
    fix_ipv4_checksum(&mut f);
    v.push(("tcp header cut", f));
    let mut f = good.clone();
    f[14 + 20 + 12] = 0x20; // data offset 2 words < 5
    v.push(("tcp data offset too small", f));
    v.push(("ipv6 cut in header", good6[..14 + 30].to_vec()));
    let mut f = good6.clone();
    f[14 + 4] = 0x40; // payload length beyond frame
    v.push(("ipv6 payload length beyond frame", f));
    let mut f = good6.clone();
    f[14] = 0x45; // version 4 under an IPv6 ethertype
    v.push(("ip version mismatch", f));
    v
}

#[test]
fn every_malformed_frame_is_dropped_and_counted() {
    let c = corpus();
    let mut frames: Vec<(f64, Vec<u8>)> = c
        .iter()
        .enumerate()
        .map(|(i, (_, f))| (1.0 + i as f64 * 0.01, f.clone()))
        .collect();
    // Valid traffic after the garbage still flows.
    frames.push((2.0, tcp("198.18.100.9", 40009, VIP, 80, SYN)));
    let r = replay(&cfg(), &frames, &[]);
    let n = c.len() as u64;
    assert_eq!(r.summary(), (n + 1, 1, 0, n), "{}", r.stderr);
    let counted: u64 = r
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("drop "))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, n, "every drop has a reason: {}", r.stderr);
    let reasons = r.stderr.lines().filter(|l| l.starts_with("drop ")).count();
    assert!(
        reasons >= 8,
        "distinct reasons, not one bucket: {}",
        r.stderr
    );
}

#[test]
fn each_malformed_frame_alone_is_dropped() {
    for (name, f) in corpus() {
        let r = replay(&cfg(), &[(1.0, f)], &[]);
        assert_eq!(r.summary(), (1, 0, 0, 1), "{name}: {}", r.stderr);
    }
}

/// IPVS reassembles fragments to a service: both are kept (nothing sent,
/// nothing dropped) until the datagram, whose middle never comes, times
/// out after ipfrag_time (30 s) and is counted once.
#[test]
fn fragments_to_a_service_are_held_then_time_out() {
    let mut first = tcp("198.18.100.1", 40001, VIP, 80, SYN);
    first[14 + 6] = 0x20; // MF, offset 0
    fix_ipv4_checksum(&mut first);
    let mut later = tcp("198.18.100.1", 40001, VIP, 80, SYN);
    later[14 + 6] = 0x00;
    later[14 + 7] = 0x10; // offset 16*8
    fix_ipv4_checksum(&mut later);
    let tick = udp("198.18.100.1", 5000, "198.18.100.2", 9, b"tick");
    let r = replay(
        &cfg(),
        &[
            (1.0, first.clone()),
            (1.1, later),
            (1.2, first),
            (31.5, tick),
        ],
        &[],
    );
    // The repeated first fragment is a duplicate; the last frame passes;
    // the timeout sends the client an ICMP time exceeded (the one frame
    // out), since its first fragment came (`ip_expire`).
    assert_eq!(r.summary(), (4, 1, 1, 1), "{}", r.stderr);
    assert!(r.stderr.contains("icmp_frag_time 1"), "{}", r.stderr);
    assert_eq!(r.out.len(), 1, "{}", r.stderr);
    assert_eq!(r.drops("frag_dup"), 1);
    assert_eq!(r.drops("frag_timeout"), 1);
    assert_eq!(r.drops("fragment"), 0);
}

#[test]
fn random_and_bit_flipped_frames_never_crash() {
    // A seeded generator: deterministic, no dependency needed.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds = [
        tcp("198.18.100.1", 40001, VIP, 80, SYN),
        tcp("2001:2::100:1", 40001, "2001:2::250", 80, SYN),
        udp("198.18.100.1", 5000, VIP, 80, b"hello"),
    ];
    let mut frames = Vec::new();
    for i in 0..3000 {
        let mut f = seeds[i % seeds.len()].clone();
        match next() % 3 {
            0 => {
                let flips = 1 + next() % 4;
                for _ in 0..flips {
                    let pos = (next() as usize) % f.len();
                    f[pos] ^= 1 << (next() % 8);
                }
            }
            1 => {
                let len = (next() as usize) % f.len();
                f.truncate(len);
            }
            _ => {
                let len = (next() as usize) % 200;
                f = (0..len).map(|_| next() as u8).collect();
            }
        }
        frames.push((1.0 + i as f64 * 0.001, f));
    }
    let r = replay(&cfg(), &frames, &[]);
    let (rx, tx, pass, drop) = r.summary();
    assert_eq!(rx, 3000);
    assert_eq!(tx + pass + drop, 3000);
}
