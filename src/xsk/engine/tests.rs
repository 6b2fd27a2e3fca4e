//! The engine's unit tests: start's validation, the clock, and the data
//! plane fed snapshots the way a worker applies them.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use etherparse::PacketBuilder;
use rustc_hash::FxHashMap;

use super::{DEFAULT_IDLE_SPIN, Engine, EngineConfig, monotonic_now};
use crate::config::ZeroCopy;
use crate::dataplane::{Dataplane, DropReason, Snapshot, Verdict};
use crate::dest::NextHop;
use crate::time::Timestamp;
use crate::wire::FrameBuf;
use crate::xsk::shared::Shared;

const OWN: [u8; 6] = [2, 0, 0, 0, 0, 0xd1];
const RS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];

/// A next hop on the first (only) NIC.
fn hop(mac: [u8; 6]) -> NextHop {
    NextHop {
        nic: 0,
        mac,
        src: None,
    }
}

fn dr_plane() -> Dataplane {
    let cfg = crate::config::parse_str(
        "[[virtual_server]]\naddress = \"198.18.0.100:80\"\nprotocol = \"TCP\"\n\
         lb_algo = \"rr\"\nlb_kind = \"DR\"\n\
         [[virtual_server.real_server]]\naddress = \"198.18.1.11:80\"\n",
        "t.toml",
    )
    .unwrap();
    cfg.dataplane(cfg.dataplane_config())
}

fn syn(sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xc1], OWN)
        .ipv4([198, 18, 5, 1], [198, 18, 0, 100], 64)
        .tcp(sport, 80, 1, 1000)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

fn process(dp: &mut Dataplane, f: &[u8]) -> (Verdict, Vec<u8>) {
    let mut buf = f.to_vec();
    let mut fb = FrameBuf::new(&mut buf, 0, f.len());
    let v = dp.process(&mut fb, Timestamp::from_secs(1));
    (v, fb.data().to_vec())
}

/// The destination MACs of SYNs from client ports 2000..2004.
fn dest_macs(dp: &mut Dataplane) -> BTreeSet<Vec<u8>> {
    (2000..2004)
        .map(|sport| {
            let (v, out) = process(dp, &syn(sport));
            assert_eq!(v, Verdict::Tx(0));
            out[0..6].to_vec()
        })
        .collect()
}

#[test]
fn a_snapshot_supplies_next_hops_and_the_source_mac() {
    let mut dp = dr_plane();
    assert_eq!(
        process(&mut dp, &syn(1000)).0,
        Verdict::Drop(DropReason::NoNextHop),
        "no MAC known for the real server yet"
    );
    let mut nb = FxHashMap::default();
    nb.insert("198.18.1.11".parse::<IpAddr>().unwrap(), hop(RS_MAC));
    let shared = Shared::new(Snapshot::default());
    shared.publish(Snapshot {
        neighbours: Arc::new(nb),
        own_macs: Arc::new(vec![OWN]),
        own_addrs: Arc::new(vec!["198.18.0.1".parse().unwrap()]),
        ..Snapshot::default()
    });
    dp.apply_snapshot(&shared.load());
    assert_eq!(dp.own_mac(), OWN);
    let (v, out) = process(&mut dp, &syn(1001));
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(&out[0..6], &RS_MAC);
    assert_eq!(&out[6..12], &OWN);
    assert_eq!(shared.generation(), 1);
}

#[test]
fn next_hops_follow_both_new_servers_and_new_neighbour_macs() {
    let mut dp = dr_plane();
    let snap = |mac: [u8; 6]| {
        let mut nb = FxHashMap::default();
        nb.insert("198.18.1.11".parse::<IpAddr>().unwrap(), hop(RS_MAC));
        nb.insert("198.18.1.12".parse::<IpAddr>().unwrap(), hop(mac));
        Snapshot {
            neighbours: Arc::new(nb),
            own_macs: Arc::new(vec![OWN]),
            ..Snapshot::default()
        }
    };
    dp.apply_snapshot(&snap([2, 0, 0, 0, 0, 0x12]));
    // A second server added afterwards (lvsadm -a) finds its MAC in the
    // neighbours already known.
    use crate::service::{DestSpec, FwdMethod, Protocol, ServiceKey, ServiceSpec};
    let key = ServiceKey {
        proto: Protocol::Tcp,
        addr: "198.18.0.100".parse().unwrap(),
        port: 80,
        fwmark: 0,
    };
    let d = |a: &str| DestSpec::new(a.parse().unwrap(), 80, FwdMethod::Route);
    let spec = ServiceSpec::new(
        key,
        crate::sched::SchedKind::Rr,
        vec![d("198.18.1.11"), d("198.18.1.12")],
    );
    dp.apply_services(&[spec]);
    let macs = dest_macs(&mut dp);
    assert_eq!(macs.len(), 2, "rr over both servers: {macs:?}");
    // The server's MAC changes (ARP): the established connections follow.
    dp.apply_snapshot(&snap([2, 0, 0, 0, 0, 0x99]));
    let macs = dest_macs(&mut dp);
    assert!(macs.contains(&vec![2, 0, 0, 0, 0, 0x99]), "{macs:?}");
    assert!(!macs.contains(&vec![2, 0, 0, 0, 0, 0x12]), "{macs:?}");
}

#[test]
fn an_all_zero_mac_keeps_the_configured_one() {
    let mut dp = dr_plane();
    let before = dp.own_mac();
    dp.apply_snapshot(&Snapshot::default());
    assert_eq!(dp.own_mac(), before);
    assert_ne!(before, [0; 6]);
}

fn cfg(queues: Vec<u32>, frames: u32, batch: usize) -> EngineConfig {
    EngineConfig {
        // Never reached: every case fails validation first.
        ifnames: vec!["lfnone0".into()],
        queues,
        nic_queues: vec![],
        cores: vec![],
        zero_copy: ZeroCopy::Off,
        frames_per_queue: frames,
        batch,
        idle_spin: DEFAULT_IDLE_SPIN,
        kernel_port: None,
    }
}

fn start_err(c: &EngineConfig, planes: usize) -> String {
    let dps = (0..planes).map(|_| dr_plane()).collect();
    let shared = Shared::new(Snapshot::default());
    Engine::start_with(c, &mut |_, _, _| Ok(()), shared, dps)
        .unwrap_err()
        .to_string()
}

#[test]
fn start_rejects_inconsistent_settings() {
    assert!(start_err(&cfg(vec![], 4096, 64), 0).contains("no RX queue"));
    assert!(start_err(&cfg(vec![0, 1], 4096, 64), 1).contains("1 data planes for 2 queues"));
    assert!(start_err(&cfg(vec![0, 0], 4096, 64), 2).contains("twice"));
    assert!(start_err(&cfg(vec![0], 4096, 0), 1).contains("batch"));
    assert!(start_err(&cfg(vec![0, 1], 256, 64), 2).contains("too few"));
}

#[test]
fn nics_with_different_queue_counts_are_served_queue_by_queue() {
    let mut c = cfg(vec![0, 1, 2, 3], 4096, 64);
    c.ifnames = vec!["lfa".into(), "lfb".into()];
    c.nic_queues = vec![4, 2];
    // Workers 0 and 1 on both NICs, 2 and 3 on the first only.
    let has = |w| {
        (0..2)
            .map(|n| super::lifecycle::serves(&c, w, n))
            .collect::<Vec<_>>()
    };
    assert_eq!(has(0), [true, true]);
    assert_eq!(has(1), [true, true]);
    assert_eq!(has(2), [true, false]);
    assert_eq!(has(3), [true, false]);
    // Without counts every NIC has every queue.
    c.nic_queues.clear();
    assert!(super::lifecycle::serves(&c, 3, 1));

    let mut c = cfg(vec![0, 1, 4], 4096, 64);
    c.ifnames = vec!["lfa".into(), "lfb".into()];
    c.nic_queues = vec![4, 2];
    assert!(start_err(&c, 3).contains("no NIC has RX queue 4"));
    let mut c = cfg(vec![2, 3], 4096, 64);
    c.ifnames = vec!["lfa".into(), "lfb".into()];
    c.nic_queues = vec![4, 2];
    assert!(start_err(&c, 2).contains("lfb has 2 RX queues: none of the queues [2, 3]"));
    c.nic_queues = vec![4];
    assert!(start_err(&c, 2).contains("1 queue counts for 2 NICs"));
}

#[test]
fn monotonic_clock_moves_forward() {
    let a = monotonic_now();
    std::thread::sleep(Duration::from_millis(2));
    let b = monotonic_now();
    assert!(b.since(a) >= Duration::from_millis(2), "{a:?} {b:?}");
}

#[test]
fn a_panic_s_message_is_kept_from_either_payload() {
    // What a worker's thread catches: `panic!("literal")` carries a &str,
    // a formatted panic (and slice index failures) a String.
    let caught = |f: fn()| {
        let payload = std::thread::spawn(f).join().unwrap_err();
        super::lifecycle::panic_message(payload.as_ref())
    };
    assert_eq!(caught(|| panic!("plain")), "plain");
    assert_eq!(caught(|| panic!("worker {} of {}", 1, 2)), "worker 1 of 2");
    let slice = caught(|| {
        let mut four = [0u8; 4];
        let sixteen = [0u8; 16];
        four.copy_from_slice(std::hint::black_box(&sixteen[..]));
    });
    assert!(
        slice.contains("source slice length (16) does not match destination slice length (4)"),
        "{slice}"
    );
    assert_eq!(
        caught(|| std::panic::panic_any(7u32)),
        "panicked with a non-string payload"
    );
}

#[test]
fn a_worker_death_names_worker_queue_and_cause() {
    let d = super::WorkerDeath {
        worker: 1,
        queue: 3,
        cause: "boom".to_string(),
    };
    assert_eq!(d.to_string(), "worker 1 (queue 3) died: boom");
}

#[test]
fn a_worker_s_guard_keeps_why_it_died() {
    use super::lifecycle::guarded;
    use std::sync::OnceLock;
    // Served until stopped: the data plane back, no death.
    let death = OnceLock::new();
    assert!(guarded(&death, || (dr_plane(), None)).is_some());
    assert_eq!(death.get(), None);
    // Its socket failed: the data plane still back, the cause kept.
    let death = OnceLock::new();
    let dp = guarded(&death, || (dr_plane(), Some("socket gone".to_string())));
    assert!(dp.is_some());
    assert_eq!(death.get().map(String::as_str), Some("socket gone"));
    // A panic on the worker's thread is caught there (not at join), its
    // message kept for the engine to report at once.
    let death = OnceLock::new();
    let dp = std::thread::spawn(move || {
        let r = guarded(&death, || {
            let mut four = [0u8; 4];
            four.copy_from_slice(std::hint::black_box(&[0u8; 16][..]));
            (dr_plane(), None)
        });
        (r.is_none(), death.get().cloned())
    })
    .join()
    .expect("the guard catches the panic");
    assert!(dp.0, "no data plane from a panicked worker");
    let cause = dp.1.expect("a cause");
    assert!(
        cause.contains("does not match destination slice length (4)"),
        "{cause}"
    );
}

#[test]
fn the_control_plane_leaves_the_workers_cores_when_others_exist() {
    // On a thread of its own: the affinity it sets is only that thread's.
    std::thread::spawn(|| {
        let all = core_affinity::get_core_ids().unwrap_or_default();
        let all: Vec<usize> = all.iter().map(|c| c.id).collect();
        // Every core a worker's: nothing changes.
        assert!(super::keep_off_worker_cores(&all).unwrap().is_empty());
        assert_eq!(
            core_affinity::get_core_ids().unwrap_or_default().len(),
            all.len()
        );
        if all.len() < 2 {
            return;
        }
        let rest = super::keep_off_worker_cores(&all[..1]).unwrap();
        assert_eq!(rest, all[1..]);
        let now: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(now, all[1..], "the thread now runs off core {}", all[0]);
    })
    .join()
    .unwrap();
}

#[test]
fn the_start_says_whether_the_tables_get_huge_pages() {
    let (level, note) = super::thp_note("always [madvise] never\n").unwrap();
    assert_eq!(level, log::Level::Info);
    assert!(note.contains("mode madvise"), "{note}");
    let (level, _) = super::thp_note("[always] madvise never").unwrap();
    assert_eq!(level, log::Level::Info);
    let (level, note) = super::thp_note("always madvise [never]").unwrap();
    assert_eq!(level, log::Level::Warn);
    assert!(note.contains("4 KiB pages"), "{note}");
    assert_eq!(super::thp_note("garbled"), None);
}
