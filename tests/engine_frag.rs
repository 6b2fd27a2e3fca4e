//! Two RX queues, two workers, one NAT UDP service: the fragments of the
//! requests arrive on either queue (where the veth puts them: NICs hash
//! fragments by addresses only, so all of a datagram's fragments meet on
//! one queue), while the flows belong to both workers (the owner is a hash
//! of the client address and port, `SteerMap`), so many datagrams are
//! reassembled by a worker that does not own their flow. The worker that
//! reassembles a datagram must leave it to the flow's owner, as any other
//! frame of the flow: otherwise the connection is created in the wrong
//! worker and the real server's replies, which the owner gets, find none.
//! Needs root.
#![forbid(unsafe_code)]

mod engine_netns;

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use engine_netns::*;
use etherparse::PacketBuilder;
use lvsfwd::forward::frag::{ExtraTx, fragment};
use lvsfwd::wire::{self, Fragment, IpVersion, L4, checksum, ipv4};

/// A 3000-byte UDP request of client `i` to the VIP (DF clear), in three
/// fragments.
fn request_fragments(i: u16) -> Vec<Vec<u8>> {
    let payload: Vec<u8> = (0..3000u32).map(|b| (b % 251) as u8 ^ i as u8).collect();
    let mut v = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, DIRECTOR_MAC)
        .ipv4(client(i).octets(), VIP.octets(), 64)
        .udp(40000 + i, 53)
        .write(&mut v, &payload)
        .unwrap();
    let h = &mut v[wire::ETH_HLEN..wire::ETH_HLEN + 20];
    h[ipv4::field::IDENT].copy_from_slice(&(100 + i).to_be_bytes());
    h[ipv4::field::FLG_OFF].fill(0);
    h[ipv4::field::CHECKSUM].fill(0);
    let c = checksum::checksum(h);
    h[ipv4::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    let mut x = ExtraTx::with_capacity(1 << 16, 16);
    fragment(&v, wire::ETH_HLEN, IpVersion::V4, 1500, 0, &mut x, 0).unwrap();
    x.iter().map(|(f, _)| f.to_vec()).collect()
}

fn reply(i: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(RS_MAC, DIRECTOR_MAC)
        .ipv4(RS.octets(), client(i).octets(), 64)
        .udp(5353, 40000 + i)
        .write(&mut v, b"answer")
        .unwrap();
    v
}

#[test]
fn a_reassembled_datagram_is_processed_by_its_flow_s_owner() {
    let rig = Rig::new(2);
    let engine = rig.start(&one_service("UDP", 53, "NAT", 5353, ""), vec![0, 1]);
    const FLOWS: u16 = 16;

    let frags: Vec<Vec<u8>> = (0..FLOWS).flat_map(request_fragments).collect();
    assert_eq!(frags.len(), 3 * FLOWS as usize);
    let out = rig.exchange(&frags, frags.len(), 5.0, 0);
    // Every datagram reached the real server, in fragments again, its
    // first fragment rewritten to the real server's port.
    let mut firsts: Vec<(IpAddr, u16)> = Vec::new();
    let mut to_rs = 0;
    for f in &out {
        let Some(p) = wire::parse(f).ok().flatten() else {
            continue;
        };
        if p.dst != IpAddr::V4(RS) {
            continue;
        }
        to_rs += 1;
        if let (Fragment::First, L4::Udp { sport, dport }) = (p.frag, p.l4) {
            assert_eq!(dport, 5353);
            firsts.push((p.src, sport));
        }
    }
    if to_rs != 3 * FLOWS as usize {
        let c = engine.counters.clone();
        let dps = engine.stop();
        for (w, d) in c.iter().zip(&dps) {
            eprintln!(
                "rx {} tx_ring_full {} steered {} drop {:?} {:?} frag_sent {} reasm {}",
                d.counters.rx,
                w.tx_ring_full.load(Ordering::Relaxed),
                w.steered_out.load(Ordering::Relaxed),
                d.counters.drop_reasons(),
                d.counters.kernel_reasons(),
                d.counters.frag_sent,
                d.counters.frag_reassembled
            );
        }
        panic!("fragments to the real server: {to_rs}");
    }
    assert_eq!(firsts.len(), FLOWS as usize, "{firsts:?}");

    // The replies: each goes to the worker that owns the flow, which must
    // hold its connection.
    let replies: Vec<Vec<u8>> = (0..FLOWS).map(reply).collect();
    let back = rig.exchange(&replies, FLOWS as usize, 5.0, 1);
    let mut to_clients: Vec<u16> = back
        .iter()
        .filter_map(|f| {
            let p = wire::parse(f).ok()??;
            match p.l4 {
                L4::Udp { sport: 53, dport } if p.src == IpAddr::V4(VIP) => Some(dport),
                _ => None,
            }
        })
        .collect();
    to_clients.sort_unstable();
    assert_eq!(
        to_clients,
        (0..FLOWS).map(|i| 40000 + i).collect::<Vec<_>>(),
        "every reply went back to its client from the VIP"
    );

    let c = engine.counters.clone();
    let so: Vec<u64> = c
        .iter()
        .map(|w| w.steered_out.load(Ordering::Relaxed))
        .collect();
    let steer_drop: u64 = c.iter().map(|w| w.steer_drop.load(Ordering::Relaxed)).sum();
    assert_eq!(steer_drop, 0);
    // Every fragment found a free frame (the reserve the fill rings and
    // the frames lent to the peer leave).
    let ring_full: u64 = c
        .iter()
        .map(|w| w.tx_ring_full.load(Ordering::Relaxed))
        .sum();
    assert_eq!(ring_full, 0);
    assert!(so.iter().sum::<u64>() > 0, "steered out per worker {so:?}");
    let dps = engine.stop();
    assert_eq!(dps.len(), 2);
    let reasm: Vec<u64> = dps.iter().map(|d| d.counters.frag_reassembled).collect();
    assert_eq!(reasm.iter().sum::<u64>(), FLOWS as u64, "{reasm:?}");
    let conns: Vec<usize> = dps.iter().map(|d| d.conns.len()).collect();
    assert!(conns[0] > 0 && conns[1] > 0, "both own flows: {conns:?}");
    assert_eq!(
        conns.iter().sum::<usize>(),
        FLOWS as usize,
        "each connection lives on one worker only: {conns:?}"
    );
    for d in &dps {
        assert_eq!(d.frags_held(), (0, 0), "every buffer came back");
    }
}
