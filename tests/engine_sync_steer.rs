//! Connection sync with two workers, FULLNAT: a backup engine of two RX
//! queues is handed synced FULLNAT conns whose local ports (chosen by the
//! master's workers) fall in either worker's port slice. The client's
//! segments (queue 0) and the real server's replies (queue 1, steered by
//! their local port) must both meet the conn: the replies of a conn held
//! by the other worker are handed over through its reply stub
//! (`xsk::sync_steer`). Without the stub about half of the replies found
//! no conn. Needs root.
#![forbid(unsafe_code)]

mod engine_netns;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use engine_netns::*;
use lvsfwd::conn::{ConnState, SyncRecord};
use lvsfwd::service::{FwdMethod, Protocol};

const LADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 1);

/// Local ports from both halves of 1024-65535 (both workers' slices).
fn lport(i: u16) -> u16 {
    if i.is_multiple_of(2) {
        2000 + i
    } else {
        50000 + i
    }
}

#[test]
fn synced_fullnat_conns_answer_both_ways_on_two_workers() {
    let rig = Rig::new(2);
    let laddr = format!("local_address = [\"{LADDR}\"]");
    let toml = one_service("TCP", 80, "FULLNAT", 8080, &laddr);
    let engine = rig.start(&toml, vec![0, 1]);
    const FLOWS: u16 = 16;
    engine
        .shared
        .sync
        .mode
        .store(lvsfwd::xsk::shared::SYNC_BACKUP, Ordering::Relaxed);
    for i in 0..FLOWS {
        let r = SyncRecord {
            proto: Protocol::Tcp,
            fwd: FwdMethod::FullNat,
            template: false,
            inactive: false,
            no_output: false,
            state: ConnState::Established,
            caddr: IpAddr::V4(client(i)),
            cport: 42000 + i,
            vaddr: IpAddr::V4(VIP),
            vport: 80,
            daddr: IpAddr::V4(RS),
            dport: 8080,
            local: Some((IpAddr::V4(LADDR), lport(i))),
            fwmark: 0,
            timeout: 900,
        };
        let first = lvsfwd::xsk::sync_steer::first_worker(&r, 2);
        assert!(engine.shared.sync.to_worker(first, r));
    }
    let applied = || engine.shared.sync.created.load(Ordering::Relaxed);
    let t0 = std::time::Instant::now();
    while applied() < u64::from(FLOWS) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(applied(), u64::from(FLOWS));

    // The clients' segments: to the real server from the local side.
    let acks = from_clients(FLOWS, false, true);
    let to_rs = rig.exchange_sorted(&acks, FLOWS as usize, 0, |s| s.sport);
    let mut want: Vec<u16> = (0..FLOWS).map(lport).collect();
    want.sort();
    assert_eq!(to_rs.iter().map(|s| s.sport).collect::<Vec<_>>(), want);
    for s in &to_rs {
        assert_eq!(
            (s.src, s.dst, s.dport),
            (IpAddr::V4(LADDR), IpAddr::V4(RS), 8080)
        );
        assert!(s.csum_ok);
    }

    // The replies, to the local side: back to each client from the VIP.
    let replies = from_rs(FLOWS, |i| (LADDR, lport(i)), false, true);
    let to_clients = rig.exchange_sorted(&replies, FLOWS as usize, 1, |s| s.dport);
    assert_back_to_clients(&to_clients, FLOWS);
    let dps = engine.stop();
    // Each conn listed once, on the worker of its client.
    assert_eq!(
        dps.iter().map(|d| d.conns.iter().count()).sum::<usize>(),
        FLOWS as usize
    );
}
