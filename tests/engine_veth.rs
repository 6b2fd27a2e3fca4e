//! The AF_XDP engine on a real link: a veth pair between two namespaces,
//! the engine serving one end, raw frames sent and captured on the other.
//! Needs root (fails otherwise).
#![forbid(unsafe_code)]

mod engine_netns;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use engine_netns::*;
use lvsfwd::config::ZeroCopy;

const CLIENT: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 5, 1);

fn dr_config() -> String {
    one_service("TCP", 80, "DR", 80, "")
}

#[test]
fn dr_syns_leave_for_the_real_server_mac() {
    let rig = Rig::new(1);
    let engine = rig.start(&dr_config(), vec![0]);
    let syns: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            tcp(
                PEER_MAC,
                DIRECTOR_MAC,
                CLIENT,
                40000 + i,
                VIP,
                80,
                true,
                false,
            )
        })
        .collect();
    let got = rig.exchange(&syns, syns.len(), 5.0, 0);
    let counters = engine.counters.clone();
    let dps = engine.stop();

    let mut seen: Vec<Seen> = got.iter().filter_map(|f| seen(f)).collect();
    seen.sort_by_key(|s| s.sport);
    assert_eq!(seen.len(), 8, "every SYN forwarded: {seen:?}");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.dmac, RS_MAC, "to the real server's MAC");
        assert_eq!(s.smac, DIRECTOR_MAC, "from the director's MAC");
        assert_eq!(s.src, IpAddr::V4(CLIENT));
        assert_eq!(s.sport, 40000 + i as u16);
        assert_eq!(s.dst, IpAddr::V4(VIP), "DR leaves the VIP in place");
        assert_eq!(s.dport, 80);
        assert_eq!(s.ttl, 63, "TTL decremented like IPVS");
        assert!(s.csum_ok);
    }
    let (rx, tx, _, _) = counters[0].load();
    assert_eq!(tx, 8);
    assert!(rx >= 8);
    assert_eq!(dps.len(), 1);
    assert_eq!(dps[0].conns.len(), 8, "one connection per SYN");
}

#[test]
fn nat_round_trip_through_the_director() {
    let rig = Rig::new(1);
    let engine = rig.start(&one_service("TCP", 80, "NAT", 8080, ""), vec![0]);
    let ports: Vec<u16> = (0..4).map(|i| 41000 + i).collect();

    // Client -> VIP: rewritten to the real server.
    let syns: Vec<Vec<u8>> = ports
        .iter()
        .map(|&p| tcp(PEER_MAC, DIRECTOR_MAC, CLIENT, p, VIP, 80, true, false))
        .collect();
    let mut to_rs: Vec<Seen> = rig
        .exchange(&syns, ports.len(), 5.0, 0)
        .iter()
        .filter_map(|f| seen(f))
        .collect();
    to_rs.sort_by_key(|s| s.sport);
    assert_eq!(to_rs.len(), ports.len(), "{to_rs:?}");
    for (s, &p) in to_rs.iter().zip(&ports) {
        assert_eq!((s.dmac, s.smac), (RS_MAC, DIRECTOR_MAC));
        assert_eq!((s.src, s.sport), (IpAddr::V4(CLIENT), p));
        assert_eq!((s.dst, s.dport), (IpAddr::V4(RS), 8080));
        assert!(s.csum_ok, "NAT keeps the TCP checksum right");
    }

    // Real server -> client: rewritten back to come from the VIP, sent to
    // the MAC the client's SYN came from.
    let replies: Vec<Vec<u8>> = ports
        .iter()
        .map(|&p| tcp(RS_MAC, DIRECTOR_MAC, RS, 8080, CLIENT, p, true, true))
        .collect();
    let mut to_client: Vec<Seen> = rig
        .exchange(&replies, ports.len(), 5.0, 0)
        .iter()
        .filter_map(|f| seen(f))
        .collect();
    to_client.sort_by_key(|s| s.dport);
    assert_eq!(to_client.len(), ports.len(), "{to_client:?}");
    for (s, &p) in to_client.iter().zip(&ports) {
        assert_eq!((s.dmac, s.smac), (PEER_MAC, DIRECTOR_MAC));
        assert_eq!((s.src, s.sport), (IpAddr::V4(VIP), 80));
        assert_eq!((s.dst, s.dport), (IpAddr::V4(CLIENT), p));
        assert!(s.csum_ok);
    }
    let c = &engine.counters.clone()[0];
    assert_eq!(c.tx.load(Ordering::Relaxed), 2 * ports.len() as u64);
    assert_eq!(c.tx_ring_full.load(Ordering::Relaxed), 0);
    let c = Arc::clone(c);
    let dps = engine.stop();
    // Final kernel statistics are published when the worker stops: every
    // descriptor we handed the kernel (fill and TX, including frames sent
    // from where NAT left them in their chunk) was valid.
    assert_eq!(c.kernel_invalid_descs.load(Ordering::Relaxed), 0);
    assert_eq!(c.kernel_rx_dropped.load(Ordering::Relaxed), 0);
    assert_eq!(dps[0].conns.len(), ports.len());
}

#[test]
fn the_kernel_keeps_its_own_traffic() {
    let rig = Rig::new(1);
    rig.director_addr("198.18.0.1/24");
    let engine = rig.start(&dr_config(), vec![0]);
    // ARP who-has 198.18.0.1 tell 198.18.0.2: not the balancer's, so the
    // XDP program passes it to the director's kernel, which answers.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&PEER_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&PEER_MAC);
    arp.extend_from_slice(&[198, 18, 0, 2]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[198, 18, 0, 1]);
    let got = rig.exchange(&[arp], 1, 5.0, 0);
    let reply = got
        .iter()
        .find(|f| f.len() >= 42 && f[12..14] == [0x08, 0x06])
        .unwrap_or_else(|| panic!("no ARP reply in {got:?}"));
    assert_eq!(&reply[20..22], &[0, 2], "an ARP reply");
    assert_eq!(&reply[22..28], &DIRECTOR_MAC);
    assert_eq!(&reply[28..32], &[198, 18, 0, 1]);
    let (rx, _, _, _) = engine.counters[0].load();
    assert_eq!(rx, 0, "the socket never saw it");
    engine.stop();
}

#[test]
fn tunnel_frames_grow_at_the_front() {
    let rig = Rig::new(1);
    let toml = dr_config().replace("\"DR\"", "\"TUN\"");
    let engine = rig.start(&toml, vec![0]);
    let syns: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            tcp(
                PEER_MAC,
                DIRECTOR_MAC,
                CLIENT,
                43000 + i,
                VIP,
                80,
                true,
                false,
            )
        })
        .collect();
    let got = rig.exchange(&syns, syns.len(), 5.0, 0);
    let c = std::sync::Arc::clone(&engine.counters[0]);
    engine.stop();
    assert_eq!(got.len(), syns.len());
    for f in &got {
        let inner_at = 14 + 20;
        // Which SYN this is: the inner TCP source port.
        let sport = u16::from_be_bytes([f[inner_at + 20], f[inner_at + 21]]);
        let orig = &syns[(sport - 43000) as usize];
        assert_eq!(f.len(), orig.len() + 20, "one IPv4 header more");
        assert_eq!((&f[0..6], &f[6..12]), (&RS_MAC[..], &DIRECTOR_MAC[..]));
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(f[14 + 9], 4, "IP-in-IP");
        assert_eq!(&f[14 + 12..14 + 16], &DIRECTOR_IP.octets());
        assert_eq!(&f[14 + 16..14 + 20], &RS.octets());
        // The inner packet is the client's, TTL one lower.
        assert_eq!(f[inner_at + 8], orig[14 + 8] - 1);
        assert_eq!(&f[inner_at + 12..], &orig[14 + 12..]);
    }
    // The grown frames were moved toward the tail of their buffers (which
    // start at the packet) and sent from where they were received; the
    // kernel accepted every descriptor.
    assert_eq!(c.kernel_invalid_descs.load(Ordering::Relaxed), 0);
}

#[test]
fn zero_copy_is_requested_as_configured() {
    let rig = Rig::new(1);
    // veth has no zero-copy AF_XDP: On is an error naming the cause...
    let err = rig
        .try_start(&dr_config(), vec![0], ZeroCopy::On)
        .err()
        .expect("zero-copy on veth must fail");
    assert!(err.contains("zero-copy bind failed"), "{err}");
    // ...while Auto falls back to copy mode and Off asks for it.
    for zc in [ZeroCopy::Auto, ZeroCopy::Off] {
        let d = rig.try_start(&dr_config(), vec![0], zc).unwrap();
        assert_eq!(d.workers.len(), 1);
        assert_eq!(d.workers[0].queue, 0);
        assert!(!d.workers[0].zero_copy, "{zc:?}");
        d.stop();
    }
}

#[test]
fn workers_report_the_snapshot_generation_they_applied() {
    // What the daemon waits on before the XDP filter follows a new
    // service table (Engine::wait_applied).
    let rig = Rig::new(1);
    let engine = rig.start(&dr_config(), vec![0]);
    let next = (*engine.shared.load()).clone();
    let g = engine.shared.publish(next);
    let applied = || {
        engine.counters[0]
            .applied_generation
            .load(std::sync::atomic::Ordering::Acquire)
    };
    let t0 = std::time::Instant::now();
    // An idle worker applies it when its poll returns (at most 50 ms).
    while applied() < g && t0.elapsed() < std::time::Duration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(applied(), g, "after {:?}", t0.elapsed());
    engine.stop();
}

#[test]
fn a_snapshot_s_sysctls_reach_the_workers() {
    // lb.toml [global]'s connection sysctls follow a reload this way.
    let rig = Rig::new(1);
    let engine = rig.start(&dr_config(), vec![0]);
    let before = lvsfwd::conn::ConnSysctls::default();
    let wanted = lvsfwd::conn::ConnSysctls {
        expire_nodest_conn: !before.expire_nodest_conn,
        drop_entry: !before.drop_entry,
        ..before
    };
    let mut next = (*engine.shared.load()).clone();
    next.sysctls = Some(wanted);
    let g = engine.shared.publish(next);
    let t0 = std::time::Instant::now();
    while engine.counters[0]
        .applied_generation
        .load(std::sync::atomic::Ordering::Acquire)
        < g
        && t0.elapsed() < std::time::Duration::from_secs(2)
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let dps = engine.stop();
    assert_eq!(dps[0].conns.sysctls(), wanted);
}

#[test]
fn a_worker_whose_link_goes_away_is_reported_dead() {
    // The engine reports a worker that ended while it runs, whatever the
    // reason (a panic, or as here its socket failing for good), so that
    // the daemon stops instead of living on with a queue nobody serves.
    let rig = Rig::new(1);
    let engine = rig.start(&dr_config(), vec![0]);
    assert_eq!(
        engine.wait_death(std::time::Duration::from_millis(300)),
        None,
        "a serving worker is not dead"
    );
    let t0 = std::time::Instant::now();
    rig.delete_director_link();
    let d = engine
        .wait_death(std::time::Duration::from_secs(5))
        .expect("the worker of the deleted link reported dead");
    assert!(
        t0.elapsed() < std::time::Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!((d.worker, d.queue), (0, 0));
    assert!(
        d.cause.contains("AF_XDP socket failed") && d.cause.contains("Network is down"),
        "{d}"
    );
    assert_eq!(
        d.to_string(),
        format!("worker 0 (queue 0) died: {}", d.cause)
    );
    // Stopping still joins it and hands its data plane back.
    assert_eq!(engine.stop().len(), 1);
}
