//! Two RX queues, two workers, one NAT service: the client side of every
//! connection arrives on queue 0 and the real server's replies on queue 1
//! (the peer sends each from a different CPU, and an AF_PACKET sender's
//! veth queue follows its CPU, here for nearly every frame), so for most
//! connections one direction lands on the worker that does not own it and
//! must be handed over. Needs root.
#![forbid(unsafe_code)]

mod engine_netns;

use std::sync::atomic::Ordering;

use engine_netns::*;

#[test]
fn nat_connections_survive_replies_on_another_queue() {
    let rig = Rig::new(2);
    let engine = rig.start(&one_service("TCP", 80, "NAT", 8080, ""), vec![0, 1]);
    const FLOWS: u16 = 16;

    let syns = from_clients(FLOWS, true, false);
    let to_rs = rig.exchange_sorted(&syns, FLOWS as usize, 0, |s| s.sport);
    assert_flows(&to_rs, FLOWS, RS_MAC, |i| {
        ((client(i), 42000 + i), (RS, 8080))
    });

    let replies = from_rs(FLOWS, |i| (client(i), 42000 + i), true, true);
    let to_clients = rig.exchange_sorted(&replies, FLOWS as usize, 1, |s| s.dport);
    assert_back_to_clients(&to_clients, FLOWS);
    assert!(to_clients.iter().all(|s| s.smac == DIRECTOR_MAC));

    let c = engine.counters.clone();
    let get = |i: usize, f: fn(&lvsfwd::xsk::shared::WorkerCounters) -> u64| f(&c[i]);
    let steered: u64 = (0..2)
        .map(|i| get(i, |w| w.steered_out.load(Ordering::Relaxed)))
        .sum();
    let steer_drop: u64 = (0..2)
        .map(|i| get(i, |w| w.steer_drop.load(Ordering::Relaxed)))
        .sum();
    let tx: Vec<u64> = (0..2)
        .map(|i| get(i, |w| w.tx.load(Ordering::Relaxed)))
        .collect();
    let so: Vec<u64> = (0..2)
        .map(|i| get(i, |w| w.steered_out.load(Ordering::Relaxed)))
        .collect();
    // Both workers received frames of connections the other owns and
    // handed them over (without that, the replies would have been lost).
    assert!(so[0] > 0 && so[1] > 0, "steered out per worker {so:?}");
    assert!(steered <= 2 * FLOWS as u64);
    assert_eq!(steer_drop, 0);
    assert_eq!(tx.iter().sum::<u64>(), 2 * FLOWS as u64);
    assert!(
        tx[0] > 0 && tx[1] > 0,
        "both workers own connections: {tx:?}"
    );

    let dps = engine.stop();
    for w in &c {
        assert_eq!(w.kernel_invalid_descs.load(Ordering::Relaxed), 0);
    }
    assert_eq!(dps.len(), 2);
    assert_eq!(
        dps.iter().map(|d| d.conns.len()).sum::<usize>(),
        FLOWS as usize,
        "each connection lives on one worker only"
    );
}

#[test]
fn rx_queue_count_reads_the_nics_channels() {
    let rig = Rig::new(2);
    let path = format!("/var/run/netns/{}", rig.dns);
    let dev = rig.dev.clone();
    let (n, missing) = std::thread::spawn(move || {
        lvsfwd::xsk::prog::enter_netns(std::path::Path::new(&path)).unwrap();
        (
            lvsfwd::xsk::engine::rx_queue_count(&dev).unwrap(),
            lvsfwd::xsk::engine::rx_queue_count("lfnosuch0").is_err(),
        )
    })
    .join()
    .unwrap();
    assert_eq!(n, 2);
    assert!(missing, "an interface that does not exist is an error");
}
