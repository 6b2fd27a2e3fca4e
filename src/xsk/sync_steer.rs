//! Where a received sync record goes in a multi-queue engine.
//!
//! A record is applied in the worker owning its client side (`steer`'s
//! client owner), as the conn's client packets are steered there. A FULLNAT
//! conn's replies, though, are steered by their destination port (the local
//! port, `steer::port_owner`): a conn made here takes a port from its own
//! worker's slice, so both directions meet, but a synced one carries the
//! port the *master's* worker chose, whose slice may be another worker's
//! here. So such a record first goes to that port's worker, which keeps a
//! reply stub naming the client's worker (`ConnTable::stub_synced`) and
//! hands the replies over to it (`Verdict::HandOver`), then on to the
//! client's worker, which applies it. The receiver thread starts a FULLNAT
//! record at its port's worker ([`first_worker`]), every other at worker 0;
//! [`next_hop`] is each worker's step, and never sends a record back.

use crate::conn::SyncRecord;
use crate::service::FwdMethod;
use crate::xsk::steer::{SteerMap, port_owner};

/// The worker a received record is first handed to, of `workers`.
pub fn first_worker(r: &SyncRecord, workers: usize) -> usize {
    reply_worker(r, workers as u32).map_or(0, |w| w as usize)
}

/// The worker a FULLNAT conn's replies are steered to, by its local port.
fn reply_worker(r: &SyncRecord, workers: u32) -> Option<u32> {
    if r.fwd != FwdMethod::FullNat || r.template || workers < 2 {
        return None;
    }
    let (_, lport) = r.local?;
    port_owner(lport, workers)
}

/// What worker `me` does with a record.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Keep a reply stub naming this worker (the client's) first.
    pub stub_for: Option<u32>,
    /// Then pass it on to this worker; `None`: apply it here.
    pub forward: Option<usize>,
}

/// Worker `me`'s step for record `r` (see the module doc).
pub fn next_hop(r: &SyncRecord, me: usize, steer: &SteerMap) -> Hop {
    let owner = steer.client_owner(r.caddr, r.cport);
    let replies = reply_worker(r, steer.workers()).filter(|&w| w != owner);
    let stub_for = (replies == Some(me as u32)).then_some(owner);
    let forward = (owner as usize != me).then_some(owner as usize);
    Hop { stub_for, forward }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use etherparse::PacketBuilder;

    use super::*;
    use crate::config::parse_str;
    use crate::conn::SyncApplied;
    use crate::dataplane::{Dataplane, HashSeeds, Verdict};
    use crate::time::Timestamp;
    use crate::wire::FrameBuf;
    use crate::xsk::steer::fullnat_ports;

    const RS: [u8; 4] = [198, 18, 1, 11];
    const LADDR: [u8; 4] = [198, 18, 9, 1];
    const VIP: [u8; 4] = [198, 18, 0, 100];

    fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xc1], [2, 0, 0, 0, 0, 0xd1])
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 7, 1000)
            .ack(8);
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    fn run(dp: &mut Dataplane, f: &[u8]) -> Verdict {
        run_out(dp, f).0
    }

    /// [`run`], with the frame as it left.
    fn run_out(dp: &mut Dataplane, f: &[u8]) -> (Verdict, Vec<u8>) {
        let mut buf = vec![0u8; 256 + f.len()];
        buf[256..].copy_from_slice(f);
        let mut fb = FrameBuf::new(&mut buf, 256, f.len());
        let v = dp.process(&mut fb, Timestamp::from_secs(1));
        (v, fb.data().to_vec())
    }

    /// A backup engine of two workers, one FULLNAT service.
    fn workers() -> (Vec<Dataplane>, SteerMap) {
        let cfg = parse_str(
            "[[virtual_server]]\naddress = \"198.18.0.100:80\"\nprotocol = \"TCP\"\n\
             lb_algo = \"rr\"\nlb_kind = \"FULLNAT\"\nlocal_address = [\"198.18.9.1\"]\n\
             [[virtual_server.real_server]]\naddress = \"198.18.1.11:8080\"\n\
             mac = \"02:00:00:00:00:11\"\n",
            "t.toml",
        )
        .unwrap();
        let dps: Vec<Dataplane> = (0..2)
            .map(|i| {
                let mut dp = cfg.dataplane(cfg.dataplane_config());
                dp.conns.set_fullnat_ports(fullnat_ports(i, 2));
                dp.set_sync_mode(false, true);
                dp
            })
            .collect();
        let map = SteerMap::new(&dps[0].services, 2, HashSeeds::FIXED.steer);
        (dps, map)
    }

    fn record(client: [u8; 4], cport: u16, lport: u16) -> SyncRecord {
        SyncRecord {
            fwd: FwdMethod::FullNat,
            caddr: IpAddr::from(client),
            cport,
            vaddr: IpAddr::from(VIP),
            daddr: IpAddr::from(RS),
            dport: 8080,
            local: Some((IpAddr::from(LADDR), lport)),
            ..SyncRecord::sample()
        }
    }

    /// Runs `r` through the workers as the engine does; returns the
    /// workers it visited.
    fn deliver(dps: &mut [Dataplane], map: &SteerMap, r: &SyncRecord) -> Vec<usize> {
        let now = Timestamp::from_secs(1);
        let mut at = first_worker(r, dps.len());
        let mut path = vec![at];
        loop {
            let hop = next_hop(r, at, map);
            if let Some(o) = hop.stub_for {
                assert!(dps[at].stub_synced(r, o, now));
            }
            match hop.forward {
                Some(w) => {
                    at = w;
                    path.push(w);
                    assert!(path.len() <= 3, "a loop: {path:?}");
                }
                None => {
                    assert_ne!(dps[at].apply_synced(r, now), SyncApplied::CreatedUnbound);
                    return path;
                }
            }
        }
    }

    /// The synced conn answers both directions on a 2-worker backup
    /// whichever worker the master's local port names: the client's packets
    /// and the server's replies (after a hand-over) meet the conn, as a
    /// locally made FULLNAT conn's do. Without the stub the replies of
    /// half the conns went to a worker without them (passed to the kernel).
    #[test]
    fn synced_fullnat_conns_meet_their_replies_on_two_workers() {
        let (mut dps, map) = workers();
        let mut crossed = 0;
        for i in 0..64u16 {
            let client = [198, 18, 100, 1 + i as u8];
            let cport = 40000 + i;
            // Local ports from both halves: the master's workers chose them.
            let lport = if i % 2 == 0 { 2000 + i } else { 50000 + i };
            let r = record(client, cport, lport);
            let path = deliver(&mut dps, &map, &r);
            let owner = map.client_owner(IpAddr::from(client), cport) as usize;
            assert_eq!(*path.last().unwrap(), owner);
            let steered = port_owner(lport, 2).unwrap() as usize;
            // The client's segment on its owner: forwarded to the server.
            assert!(matches!(
                run(&mut dps[owner], &tcp(client, cport, VIP, 80)),
                Verdict::Tx(_)
            ));
            // The reply, steered by its local port.
            let reply = tcp(RS, 8080, LADDR, lport);
            let (v, out) = run_out(&mut dps[steered], &reply);
            if let Verdict::HandOver(o) = v {
                crossed += 1;
                assert_ne!(o as usize, steered);
                assert_eq!(o as usize, owner, "conn {i}");
                assert_eq!(out, reply, "handed over untouched");
                assert!(matches!(run(&mut dps[owner], &out), Verdict::Tx(_)));
            } else {
                assert_eq!(steered, owner, "conn {i}");
                assert!(matches!(v, Verdict::Tx(_)));
            }
            // A message again (an update) keeps one stub, one conn.
            deliver(&mut dps, &map, &r);
        }
        assert!(crossed > 10, "some conns crossed workers: {crossed}");
        // Stubs are not listed: each conn once, on its owner.
        let listed: usize = dps.iter().map(|d| d.conns.iter().count()).sum();
        assert_eq!(listed, 64);
    }
}
