//! Every scheduler wired through `lvsfwd replay`. The exact per-scheduler
//! sequences are pinned by the unit tests in src/sched; these tests prove
//! the data plane feeds them the right packets and counters.

mod common;
use common::*;
use std::collections::HashMap;

const VIP: &str = "198.18.0.250";

fn svc(algo: &str, rs: &[(u8, u32)], extra: &str) -> String {
    let rs: Vec<(u8, u16, u32)> = rs.iter().map(|(n, w)| (*n, 80, *w)).collect();
    config(&vs4(&format!("{VIP}:80"), algo, "DR", &rs, extra))
}

/// `n` new connections (SYN only), client i from 198.18.100.(i % clients).
fn syns(n: usize, clients: usize) -> Vec<(f64, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let c = format!(
                "198.18.{}.{}",
                100 + (i % clients) / 200,
                1 + (i % clients) % 200
            );
            (
                1.0 + i as f64 * 0.001,
                tcp(&c, 20000 + i as u16, VIP, 80, SYN),
            )
        })
        .collect()
}

/// `n` connections completed to ESTABLISHED (SYN then ACK), so that they
/// count as ActiveConn for the least-connection schedulers.
fn established(n: usize) -> Vec<(f64, Vec<u8>)> {
    let mut v = Vec::new();
    for i in 0..n {
        let c = format!("198.18.100.{}", 1 + i);
        let t = 1.0 + i as f64 * 0.01;
        v.push((t, tcp(&c, 30000, VIP, 80, SYN)));
        v.push((t + 0.001, tcp(&c, 30000, VIP, 80, ACK)));
    }
    v
}

fn count(v: &[u8]) -> HashMap<u8, usize> {
    let mut m = HashMap::new();
    for x in v {
        *m.entry(*x).or_default() += 1;
    }
    m
}

#[test]
fn wrr_splits_by_weight() {
    let r = replay(
        &svc("wrr", &[(11, 2), (12, 1), (13, 1)], ""),
        &syns(400, 400),
        &[],
    );
    let c = count(&rs_of(&r.out));
    assert_eq!((c[&11], c[&12], c[&13]), (200, 100, 100));
}

#[test]
fn wlc_balances_established_connections_by_weight() {
    let r = replay(&svc("wlc", &[(11, 3), (12, 1)], ""), &established(8), &[]);
    let firsts: Vec<u8> = rs_of(&r.out).chunks(2).map(|c| c[0]).collect();
    let c = count(&firsts);
    assert_eq!((c[&11], c[&12]), (6, 2), "{firsts:?}");
}

#[test]
fn lc_sed_nq_balance_established_connections() {
    for algo in ["lc", "sed", "nq"] {
        let r = replay(&svc(algo, &[(11, 1), (12, 1)], ""), &established(8), &[]);
        let firsts: Vec<u8> = rs_of(&r.out).chunks(2).map(|c| c[0]).collect();
        let c = count(&firsts);
        assert_eq!((c[&11], c[&12]), (4, 4), "{algo}: {firsts:?}");
    }
}

#[test]
fn weight_zero_quiesces_a_real_server() {
    // sh and dh keep a weight-0 server in their hash tables (as IPVS does)
    // and only move its clients elsewhere with the fallback flag.
    let cases = [
        ("rr", ""),
        ("wrr", ""),
        ("lc", ""),
        ("wlc", ""),
        ("sed", ""),
        ("nq", ""),
        ("mh", ""),
        ("fo", ""),
        ("ovf", ""),
        ("twos", ""),
        ("lblc", ""),
        ("lblcr", ""),
        ("sh", "sched_flags = [\"sh-fallback\"]"),
    ];
    for (algo, extra) in cases {
        let r = replay(&svc(algo, &[(11, 0), (12, 100)], extra), &syns(20, 20), &[]);
        let c = count(&rs_of(&r.out));
        assert_eq!(c.get(&11), None, "{algo} sent to a weight-0 server");
        assert_eq!(c[&12], 20, "{algo}");
    }
}

#[test]
fn source_hashing_is_sticky_per_client_and_spreads_clients() {
    for algo in ["sh", "mh"] {
        // 50 clients, 4 connections each.
        let mut frames = Vec::new();
        for k in 0..4 {
            for i in 0..50u16 {
                let c = format!("198.18.100.{}", 1 + i);
                frames.push((
                    1.0 + (k * 50 + i) as f64 * 0.001,
                    tcp(&c, 20000 + k, VIP, 80, SYN),
                ));
            }
        }
        let r = replay(&svc(algo, &[(11, 1), (12, 1), (13, 1)], ""), &frames, &[]);
        let rs = rs_of(&r.out);
        for i in 0..50 {
            let picks: Vec<u8> = (0..4).map(|k| rs[k * 50 + i]).collect();
            assert!(
                picks.iter().all(|p| *p == picks[0]),
                "{algo}: client {i} moved: {picks:?}"
            );
        }
        let c = count(&rs);
        assert_eq!(c.len(), 3, "{algo} must use every server: {c:?}");
    }
}

#[test]
fn sh_port_flag_hashes_the_source_port_too() {
    let mut frames = Vec::new();
    for p in 0..60u16 {
        frames.push((
            1.0 + p as f64 * 0.001,
            tcp("198.18.100.1", 20000 + p, VIP, 80, SYN),
        ));
    }
    let plain = replay(&svc("sh", &[(11, 1), (12, 1), (13, 1)], ""), &frames, &[]);
    assert_eq!(count(&rs_of(&plain.out)).len(), 1, "one client, one server");
    let port = replay(
        &svc(
            "sh",
            &[(11, 1), (12, 1), (13, 1)],
            "sched_flags = [\"sh-port\"]",
        ),
        &frames,
        &[],
    );
    assert_eq!(
        count(&rs_of(&port.out)).len(),
        3,
        "ports spread over servers"
    );
}

#[test]
fn destination_schedulers_send_one_vip_to_one_server() {
    // Weights high enough that lblc/lblcr never see their server
    // overloaded (ActiveConn > weight while another is under half).
    for algo in ["dh", "lblc", "lblcr"] {
        let r = replay(
            &svc(algo, &[(11, 50), (12, 50), (13, 50)], ""),
            &syns(30, 30),
            &[],
        );
        let c = count(&rs_of(&r.out));
        assert_eq!(c.len(), 1, "{algo}: {c:?}");
    }
    // With weight 1, a second active connection overloads the cached
    // server and lblc moves the destination to the least loaded one.
    let r = replay(
        &svc("lblc", &[(11, 1), (12, 1), (13, 1)], ""),
        &syns(3, 3),
        &[],
    );
    assert_eq!(rs_of(&r.out), vec![13, 13, 12]);
}

#[test]
fn fo_takes_the_highest_weight_and_ovf_overflows() {
    let r = replay(
        &svc("fo", &[(11, 1), (12, 5), (13, 2)], ""),
        &syns(10, 10),
        &[],
    );
    assert_eq!(count(&rs_of(&r.out))[&12], 10);
    // ovf: the highest-weight server until its ActiveConn exceeds its
    // weight (the kernel skips a dest only when activeconns > weight).
    let r = replay(&svc("ovf", &[(11, 1), (12, 3)], ""), &established(5), &[]);
    let firsts: Vec<u8> = rs_of(&r.out).chunks(2).map(|c| c[0]).collect();
    assert_eq!(firsts, vec![12, 12, 12, 12, 11]);
}

#[test]
fn twos_uses_every_server_and_is_reproducible() {
    let cfg = svc("twos", &[(11, 1), (12, 1), (13, 2)], "");
    let a = replay(&cfg, &established(40), &[]);
    let b = replay(&cfg, &established(40), &[]);
    assert_eq!(
        rs_of(&a.out),
        rs_of(&b.out),
        "seeded: same capture, same picks"
    );
    assert_eq!(count(&rs_of(&a.out)).len(), 3);
}

#[test]
fn no_available_server_drops_and_counts() {
    let r = replay(&svc("rr", &[(11, 0)], ""), &syns(3, 3), &[]);
    assert_eq!(r.summary(), (3, 0, 0, 3));
    assert_eq!(r.drops("no_dest"), 3);
}
