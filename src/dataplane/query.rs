//! Questions the control thread asks the workers, and how a worker answers
//! them from its own data plane.
//!
//! Listings (`lvsadm -L`), the rate estimator and `-Z` need what only the
//! workers know: per-worker connection counters, traffic stats and
//! connection tables. The control thread sends a [`Query`] to every worker;
//! each answers at its next batch boundary (never per packet) with
//! [`answer`], and the control thread adds the answers up with [`merge`].

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use crate::dataplane::{Counters, Dataplane};
use crate::service::{ServiceKey, Stats};
use crate::time::Timestamp;
use crate::view::{ConnView, LiveDest, LiveService};

/// What the control thread asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Connection counters and traffic stats of every service.
    Live,
    /// Every connection and template, expiry relative to the worker's now.
    Conns,
    /// `-Z`: zero the traffic stats of one service or of all.
    Zero(Option<ServiceKey>),
    /// The frame counters (drops by reason) and the connection table's
    /// fill, for metrics and the stats dump.
    Counters,
    /// Every connection and template as a sync record (connection sync:
    /// a returning director asked for the whole table).
    SyncTable,
}

/// One worker's frame counters and connection-table fill.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSample {
    pub counters: Counters,
    /// Entries (connections and templates) in the worker's table.
    pub conns: usize,
    pub capacity: usize,
    /// Entries reclaimed because the table was full.
    pub evictions: u64,
}

/// A worker's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Live(Vec<(ServiceKey, LiveService)>),
    Conns(Vec<ConnView>),
    Zeroed,
    Counters(Box<CounterSample>),
    SyncTable(Vec<crate::conn::SyncRecord>),
}

/// Answers `q` from one worker's data plane.
pub fn answer(dp: &mut Dataplane, q: &Query, now: Timestamp) -> Reply {
    match q {
        Query::Live => Reply::Live(
            dp.services
                .services
                .iter()
                .filter(|s| dp.services.lookup(&s.key).is_some())
                .map(|s| (s.key, LiveService::of(s, None)))
                .collect(),
        ),
        Query::Conns => Reply::Conns(dp.conn_views(now)),
        Query::SyncTable => Reply::SyncTable(dp.conns.sync_table(&dp.services)),
        Query::Zero(key) => {
            for s in dp.services.services.iter_mut() {
                if key.is_none_or(|k| k == s.key) {
                    s.stats = Stats::default();
                    for d in s.dests.iter_mut() {
                        d.stats = Stats::default();
                    }
                }
            }
            Reply::Zeroed
        }
        Query::Counters => Reply::Counters(Box::new(CounterSample {
            counters: dp.counters.clone(),
            conns: dp.conns.len(),
            capacity: dp.conns.capacity(),
            evictions: dp.conns.evictions(),
        })),
    }
}

/// Adds up the workers' [`Reply::Live`] answers, per service and real
/// server.
pub fn merge(replies: &[Reply]) -> FxHashMap<ServiceKey, LiveService> {
    let mut out: FxHashMap<ServiceKey, LiveService> = FxHashMap::default();
    for r in replies {
        let Reply::Live(services) = r else { continue };
        for (key, live) in services {
            let acc = out.entry(*key).or_default();
            acc.stats.add(&live.stats);
            for &(a, n) in &live.laddr_conflicts {
                match acc.laddr_conflicts.iter_mut().find(|(b, _)| *b == a) {
                    Some((_, m)) => *m += n,
                    None => acc.laddr_conflicts.push((a, n)),
                }
            }
            for d in &live.dests {
                match acc
                    .dests
                    .iter_mut()
                    .find(|a| a.addr == d.addr && a.port == d.port)
                {
                    Some(a) => add_dest(a, d),
                    None => acc.dests.push(*d),
                }
            }
        }
    }
    out
}

fn add_dest(a: &mut LiveDest, d: &LiveDest) {
    a.active_conns += d.active_conns;
    a.inact_conns += d.inact_conns;
    a.persist_conns += d.persist_conns;
    a.stats.add(&d.stats);
}

/// Every connection of every worker.
pub fn merge_conns(replies: Vec<Reply>) -> Vec<ConnView> {
    replies
        .into_iter()
        .flat_map(|r| match r {
            Reply::Conns(c) => c,
            _ => Vec::new(),
        })
        .collect()
}

/// The live counters of one real server in a merged answer.
pub fn dest_of(live: &LiveService, addr: IpAddr, port: u16) -> Option<&LiveDest> {
    live.dests.iter().find(|d| d.addr == addr && d.port == port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::Verdict;
    use crate::sched::SchedKind;
    use crate::service::{DestSpec, FwdMethod, Protocol, ServiceSpec, ServiceTable};
    use crate::wire::FrameBuf;

    fn dp() -> Dataplane {
        let mut d = DestSpec::new("198.18.0.11".parse().unwrap(), 80, FwdMethod::Route);
        d.mac = Some([2, 0, 0, 0, 0, 0x0b]);
        let key = ServiceKey {
            proto: Protocol::Tcp,
            addr: "198.18.0.250".parse().unwrap(),
            port: 80,
            fwmark: 0,
        };
        let specs = [ServiceSpec::new(key, SchedKind::Rr, vec![d])];
        Dataplane::new(
            crate::dataplane::DataplaneConfig::new(4096),
            ServiceTable::from_specs(&specs),
        )
    }

    fn syn(dp: &mut Dataplane, sport: u16) {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 0, 100], [198, 18, 0, 250], 64)
            .tcp(sport, 80, 1, 1000)
            .syn()
            .write(&mut f, &[])
            .unwrap();
        let mut buf = vec![0u8; 256 + f.len()];
        buf[256..].copy_from_slice(&f);
        let len = f.len();
        let mut fb = FrameBuf::new(&mut buf, 256, len);
        assert_eq!(dp.process(&mut fb, Timestamp::from_secs(1)), Verdict::Tx(0));
    }

    #[test]
    fn live_answers_add_up_across_workers_and_zero_clears_stats() {
        let (mut a, mut b) = (dp(), dp());
        syn(&mut a, 1000);
        syn(&mut a, 1001);
        syn(&mut b, 1002);
        let now = Timestamp::from_secs(2);
        let replies = [
            answer(&mut a, &Query::Live, now),
            answer(&mut b, &Query::Live, now),
        ];
        let m = merge(&replies);
        assert_eq!(m.len(), 1);
        let live = m.values().next().unwrap();
        assert_eq!(live.stats.conns, 3);
        let d = dest_of(live, "198.18.0.11".parse().unwrap(), 80).unwrap();
        assert_eq!(d.stats.conns, 3);
        assert_eq!(d.active_conns + d.inact_conns, 3);

        let conns = merge_conns(vec![
            answer(&mut a, &Query::Conns, now),
            answer(&mut b, &Query::Conns, now),
        ]);
        assert_eq!(conns.len(), 3);

        assert_eq!(answer(&mut a, &Query::Zero(None), now), Reply::Zeroed);
        let m = merge(&[answer(&mut a, &Query::Live, now)]);
        let live = m.values().next().unwrap();
        assert_eq!(live.stats, Stats::default());
        let d = dest_of(live, "198.18.0.11".parse().unwrap(), 80).unwrap();
        assert_eq!(
            d.active_conns + d.inact_conns,
            2,
            "-Z keeps connection counters"
        );
    }
}
