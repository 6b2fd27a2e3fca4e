use super::*;

#[test]
fn overhead_and_thresholds_follow_ipvs() {
    let mut d = Dest::new("198.18.0.11".parse().unwrap(), 80, FwdMethod::Route, 1);
    d.active_conns = 2;
    d.inact_conns = 3;
    assert_eq!(d.overhead(), 515);
    d.u_threshold = 8;
    d.persist_conns = 30;
    d.update_overload();
    assert!(!d.overloaded, "templates do not count against thresholds");
    d.inact_conns = 6;
    d.update_overload();
    assert!(d.overloaded);
    // below u_threshold but not below 3/4 of it: still overloaded
    d.inact_conns = 4;
    d.update_overload();
    assert!(d.overloaded, "total 6 is not below 6");
    d.inact_conns = 3;
    d.update_overload();
    assert!(!d.overloaded);
}

// ---- live changes (apply_specs) ----

use crate::sched::SchedInput;
use crate::time::Timestamp;

const VIP: &str = "198.18.0.250";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rs(n: u8) -> IpAddr {
    ip(&format!("198.18.1.{n}"))
}

fn dspec(n: u8, weight: i32) -> DestSpec {
    DestSpec {
        addr: rs(n),
        port: 80,
        fwd: FwdMethod::Route,
        weight,
        u_threshold: 0,
        l_threshold: 0,
        mac: None,
        tun: Default::default(),
    }
}

fn key(port: u16) -> ServiceKey {
    ServiceKey {
        proto: Protocol::Tcp,
        addr: ip(VIP),
        port,
        fwmark: 0,
    }
}

fn sspec(port: u16, sched: SchedKind, dests: &[(u8, i32)]) -> ServiceSpec {
    ServiceSpec {
        key: key(port),
        sched,
        sched_flags: SchedFlags::default(),
        persistence: None,
        persistence_prefix: 32,
        ops: false,
        local_addrs: Vec::new(),
        fwmark_matches: Vec::new(),
        dests: dests.iter().map(|&(n, w)| dspec(n, w)).collect(),
    }
}

fn input(client: &str, sport: u16) -> SchedInput {
    SchedInput {
        src: ip(client),
        sport,
        dst: ip(VIP),
        dport: 80,
        now: Timestamp::from_secs(1),
        rand: 0,
    }
}

/// The real server (last octet) the service's scheduler picks next.
fn pick_in(t: &mut ServiceTable, svc: u32, inp: &SchedInput) -> Option<u8> {
    let s = &mut t.services[svc as usize];
    let i = s.sched.schedule(&s.dests, inp)?;
    assert!(s.dests[i].available, "scheduled an unavailable dest");
    match s.dests[i].addr {
        IpAddr::V4(a) => Some(a.octets()[3]),
        IpAddr::V6(_) => None,
    }
}

fn picks(t: &mut ServiceTable, svc: u32, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| pick_in(t, svc, &input("198.18.100.1", 1000 + i as u16)).unwrap())
        .collect()
}

fn idx(t: &ServiceTable, svc: u32, n: u8) -> usize {
    t.services[svc as usize]
        .dests
        .iter()
        .position(|d| d.addr == rs(n))
        .unwrap()
}

/// Counters as the conn table would have left them.
fn load(t: &mut ServiceTable, svc: u32, n: u8, k: u32) {
    let i = idx(t, svc, n);
    let s = &mut t.services[svc as usize];
    let d = &mut s.dests[i];
    d.active_conns = k;
    d.inact_conns = k + 1;
    d.persist_conns = k + 2;
    d.stats.conns = u64::from(k) * 10;
    d.stats.inpkts = u64::from(k) * 100;
    s.stats.conns += u64::from(k) * 10;
}

fn counters(d: &Dest) -> (u32, u32, u32, Stats) {
    (d.active_conns, d.inact_conns, d.persist_conns, d.stats)
}

#[test]
fn an_initial_apply_is_from_spec() {
    let specs = [
        sspec(80, SchedKind::Rr, &[(1, 1), (2, 1), (3, 1)]),
        sspec(443, SchedKind::Wlc, &[(4, 1), (5, 2)]),
    ];
    let mut t = ServiceTable::default();
    let sum = t.apply_specs(&specs);
    assert_eq!(sum.services_added, 2);
    assert_eq!(sum.services_updated + sum.dests_added, 0);
    for (i, spec) in specs.iter().enumerate() {
        let direct = Service::from_spec(spec);
        assert_eq!(t.services[i].dests, direct.dests, "head insertion order");
        assert_eq!(t.lookup(&spec.key), Some(i as u32));
    }
    // the kernel's list for "1, 2, 3" added in order is 3, 2, 1
    assert_eq!(picks(&mut t, 0, 4), vec![3, 2, 1, 3]);
    let mut f = ServiceTable::from_specs(&specs);
    assert_eq!(picks(&mut f, 0, 4), vec![3, 2, 1, 3]);
}

#[test]
fn reapplying_the_same_specs_changes_nothing_and_keeps_scheduler_state() {
    let specs = [sspec(80, SchedKind::Rr, &[(1, 1), (2, 1), (3, 1)])];
    let mut t = ServiceTable::from_specs(&specs);
    assert_eq!(picks(&mut t, 0, 2), vec![3, 2]);
    let sum = t.apply_specs(&specs);
    assert!(sum.is_noop(), "{sum:?}");
    // rr's cursor survived: a new instance would start over at 3
    assert_eq!(picks(&mut t, 0, 2), vec![1, 3]);
}

#[test]
fn a_kept_dest_takes_its_settings_and_keeps_counters() {
    let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Wlc, &[(1, 1), (2, 1)])]);
    load(&mut t, 0, 1, 5);
    let i = idx(&t, 0, 1);
    let before = counters(&t.services[0].dests[i]);
    let svc_stats = t.services[0].stats;
    let mut spec = sspec(80, SchedKind::Wlc, &[(1, 7), (2, 1)]);
    spec.dests[0].fwd = FwdMethod::Masq;
    spec.dests[0].u_threshold = 100;
    spec.dests[0].l_threshold = 50;
    spec.dests[0].mac = Some([2, 0, 0, 0, 0, 9]);
    let sum = t.apply_specs(&[spec]);
    assert_eq!(sum.dests_updated, 1);
    assert_eq!(sum.services_updated, 1);
    assert_eq!(sum.dests_added + sum.dests_removed + sum.scheds_replaced, 0);
    assert_eq!(idx(&t, 0, 1), i, "edited in place");
    let d = &t.services[0].dests[i];
    assert_eq!(
        (d.weight, d.fwd, d.u_threshold, d.l_threshold, d.mac),
        (7, FwdMethod::Masq, 100, 50, Some([2, 0, 0, 0, 0, 9]))
    );
    assert_eq!(counters(d), before);
    assert_eq!(t.services[0].stats, svc_stats);
    assert_eq!(t.services[0].dests.len(), 2);
}

#[test]
fn overload_is_cleared_only_when_the_threshold_is_raised_or_removed() {
    let mut d = Dest::from_spec(&DestSpec {
        u_threshold: 10,
        ..dspec(1, 1)
    });
    d.overloaded = true;
    let lower = DestSpec {
        u_threshold: 5,
        ..dspec(1, 1)
    };
    assert!(d.apply_spec(&lower));
    assert!(d.overloaded, "a lower threshold waits for the next bind");
    let higher = DestSpec {
        u_threshold: 6,
        ..dspec(1, 1)
    };
    d.apply_spec(&higher);
    assert!(!d.overloaded);
    d.overloaded = true;
    assert!(!d.apply_spec(&higher), "same settings: no change");
    assert!(d.overloaded, "an unchanged threshold keeps the flag");
    d.apply_spec(&dspec(1, 1));
    assert!(!d.overloaded, "threshold removed");
}

#[test]
fn weight_zero_quiesces_through_the_scheduler_update() {
    let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Wrr, &[(1, 1), (2, 1)])]);
    let all = picks(&mut t, 0, 4);
    assert!(all.contains(&1) && all.contains(&2));
    load(&mut t, 0, 1, 3);
    let sum = t.apply_specs(&[sspec(80, SchedKind::Wrr, &[(1, 0), (2, 1)])]);
    assert_eq!(sum.dests_updated, 1);
    assert_eq!(picks(&mut t, 0, 10), vec![2; 10]);
    let d = &t.services[0].dests[idx(&t, 0, 1)];
    assert!(d.available, "quiesced, not removed");
    assert_eq!(d.active_conns, 3);
}

#[test]
fn a_removed_dest_is_unavailable_unscheduled_and_keeps_counters() {
    let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Rr, &[(1, 1), (2, 1), (3, 1)])]);
    load(&mut t, 0, 2, 4);
    let i = idx(&t, 0, 2);
    let before = counters(&t.services[0].dests[i]);
    let sum = t.apply_specs(&[sspec(80, SchedKind::Rr, &[(1, 1), (3, 1)])]);
    assert_eq!(sum.dests_removed, 1);
    assert_eq!(sum.services_updated, 1);
    let s = &t.services[0];
    assert_eq!(s.dests.len(), 3, "never removed from the Vec");
    assert!(!s.dests[i].available);
    assert_eq!(s.dests[i].addr, rs(2), "never moved");
    assert_eq!(counters(&s.dests[i]), before);
    assert_eq!(s.find_dest(rs(2), 80), None);
    let p = picks(&mut t, 0, 6);
    assert!(!p.contains(&2), "{p:?}");
    assert!(p.contains(&1) && p.contains(&3));
}

#[test]
fn a_dest_named_again_is_revived_in_place() {
    let specs = [sspec(80, SchedKind::Rr, &[(1, 1), (2, 1)])];
    let mut t = ServiceTable::from_specs(&specs);
    load(&mut t, 0, 2, 6);
    let i = idx(&t, 0, 2);
    let before = counters(&t.services[0].dests[i]);
    t.apply_specs(&[sspec(80, SchedKind::Rr, &[(1, 1)])]);
    let mut back = specs[0].clone();
    back.dests[1].weight = 3;
    let sum = t.apply_specs(&[back]);
    assert_eq!(sum.dests_restored, 1);
    assert_eq!(sum.dests_added, 0);
    let s = &t.services[0];
    assert_eq!(s.dests.len(), 2, "not duplicated");
    assert!(s.dests[i].available);
    assert_eq!(s.dests[i].weight, 3);
    assert_eq!(counters(&s.dests[i]), before, "counters and stats kept");
    assert_eq!(s.find_dest(rs(2), 80), Some(i));
    assert!(picks(&mut t, 0, 4).contains(&2));
}

#[test]
fn new_dests_are_appended_and_scheduled_after_the_old_ones() {
    let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Rr, &[(1, 1), (2, 1)])]);
    assert_eq!(picks(&mut t, 0, 1), vec![2]);
    let (i1, i2) = (idx(&t, 0, 1), idx(&t, 0, 2));
    let sum = t.apply_specs(&[sspec(80, SchedKind::Rr, &[(1, 1), (2, 1), (3, 1), (4, 1)])]);
    assert_eq!(sum.dests_added, 2);
    assert_eq!((idx(&t, 0, 1), idx(&t, 0, 2)), (i1, i2), "old refs stay");
    let order: Vec<IpAddr> = t.services[0].dests.iter().map(|d| d.addr).collect();
    // 3 then 4 added: among themselves the kernel's list has 4 first
    assert_eq!(order, vec![rs(2), rs(1), rs(4), rs(3)]);
    // rr's cycle is the kernel's: after 2 comes 1, then the new ones
    // (in the kernel they sit between the tail and the old head)
    assert_eq!(picks(&mut t, 0, 5), vec![1, 4, 3, 2, 1]);
}

#[test]
fn a_scheduler_change_binds_a_new_instance_and_keeps_stats() {
    let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Rr, &[(1, 1), (2, 1)])]);
    load(&mut t, 0, 2, 2);
    let stats = t.services[0].stats;
    let sum = t.apply_specs(&[sspec(80, SchedKind::Wlc, &[(1, 1), (2, 1)])]);
    assert_eq!(sum.scheds_replaced, 1);
    assert_eq!(sum.services_updated, 1);
    assert_eq!(t.services[0].sched.kind(), SchedKind::Wlc);
    assert_eq!(t.services[0].stats, stats);
    // wlc now sees the loaded server 2 and prefers the idle 1
    assert_eq!(picks(&mut t, 0, 3), vec![1, 1, 1]);
}

#[test]
fn flag_edits_rebind_sh_and_mh_only() {
    let servers: Vec<(u8, i32)> = (1..=8).map(|n| (n, 1)).collect();
    let mut sh = sspec(80, SchedKind::Sh, &servers);
    let mut t = ServiceTable::from_specs(std::slice::from_ref(&sh));
    let spread = |t: &mut ServiceTable| {
        let mut seen: Vec<u8> = (0..64)
            .map(|p| pick_in(t, 0, &input("198.18.100.7", 2000 + p)).unwrap())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    };
    assert_eq!(
        spread(&mut t),
        1,
        "sh without sh-port: one server per client"
    );
    sh.sched_flags.port = true;
    let sum = t.apply_specs(std::slice::from_ref(&sh));
    assert_eq!(sum.scheds_replaced, 1);
    assert!(t.services[0].sched_flags.port);
    assert!(spread(&mut t) > 1, "sh-port hashes the source port");

    let mut rr = sspec(80, SchedKind::Rr, &[(1, 1), (2, 1), (3, 1)]);
    let mut t = ServiceTable::from_specs(std::slice::from_ref(&rr));
    assert_eq!(picks(&mut t, 0, 1), vec![3]);
    rr.sched_flags.flag3 = true;
    let sum = t.apply_specs(std::slice::from_ref(&rr));
    assert_eq!(sum.scheds_replaced, 0);
    assert_eq!(sum.services_updated, 1);
    assert!(t.services[0].sched_flags.flag3, "listed flags follow");
    assert_eq!(picks(&mut t, 0, 1), vec![2], "rr kept its cursor");
}

#[test]
fn service_settings_are_updated_in_place() {
    let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Rr, &[(1, 1)])]);
    t.services[0].stats.inpkts = 42;
    let mut spec = sspec(80, SchedKind::Rr, &[(1, 1)]);
    spec.persistence = Some(Duration::from_secs(300));
    spec.persistence_prefix = 24;
    spec.ops = true;
    spec.local_addrs = vec![ip("198.18.2.1")];
    let sum = t.apply_specs(std::slice::from_ref(&spec));
    assert_eq!(sum.services_updated, 1);
    assert_eq!(sum.scheds_replaced + sum.dests_updated, 0);
    let s = &t.services[0];
    assert_eq!(s.persistence, Some(Duration::from_secs(300)));
    assert_eq!(s.persistence_prefix, 24);
    assert!(s.ops);
    assert_eq!(s.local_addrs, vec![ip("198.18.2.1")]);
    assert_eq!(s.stats.inpkts, 42);
}

#[test]
fn a_removed_service_leaves_the_index_and_keeps_its_slot() {
    let specs = [
        sspec(80, SchedKind::Rr, &[(1, 1), (2, 1)]),
        sspec(443, SchedKind::Rr, &[(3, 1)]),
    ];
    let mut t = ServiceTable::from_specs(&specs);
    load(&mut t, 0, 1, 9);
    let before = counters(&t.services[0].dests[idx(&t, 0, 1)]);
    let sum = t.apply_specs(&specs[1..]);
    assert_eq!(sum.services_removed, 1);
    assert_eq!(sum.dests_removed, 2);
    assert_eq!(t.lookup(&key(80)), None);
    assert!(!t.is_live(0));
    assert!(t.is_live(1));
    assert_eq!(t.lookup(&key(443)), Some(1), "others keep their slot");
    assert_eq!(t.services.len(), 2);
    assert!(t.services[0].dests.iter().all(|d| !d.available));
    assert_eq!(counters(&t.services[0].dests[idx(&t, 0, 1)]), before);
    let live: Vec<u32> = t.live().map(|(i, _)| i).collect();
    assert_eq!(live, vec![1]);
    assert_eq!(pick_in(&mut t, 0, &input("198.18.100.1", 1)), None);
}

#[test]
fn a_service_that_comes_back_reuses_its_slot_and_dests() {
    let specs = [
        sspec(80, SchedKind::Rr, &[(1, 1), (2, 1)]),
        sspec(443, SchedKind::Rr, &[(3, 1)]),
    ];
    let mut t = ServiceTable::from_specs(&specs);
    load(&mut t, 0, 2, 4);
    let i2 = idx(&t, 0, 2);
    t.apply_specs(&specs[1..]);
    let back = [
        sspec(443, SchedKind::Rr, &[(3, 1)]),
        sspec(80, SchedKind::Wlc, &[(2, 5), (7, 1)]),
    ];
    let sum = t.apply_specs(&back);
    assert_eq!(sum.services_restored, 1);
    assert_eq!(sum.services_added, 0);
    assert_eq!((sum.dests_restored, sum.dests_added), (1, 1));
    assert_eq!(t.services.len(), 2, "slot reused");
    assert_eq!(t.lookup(&key(80)), Some(0));
    let s = &t.services[0];
    assert_eq!(s.sched.kind(), SchedKind::Wlc);
    assert_eq!(s.stats, Stats::default(), "a new service's stats");
    let d = &s.dests[i2];
    assert!(d.available);
    assert_eq!(d.weight, 5);
    assert_eq!((d.active_conns, d.inact_conns, d.persist_conns), (4, 5, 6));
    assert_eq!(d.stats, Stats::default(), "stats zeroed on a new service");
    assert!(
        !s.dests[idx(&t, 0, 1)].available,
        "not named: stays removed"
    );
    assert_eq!(s.dests.len(), 3);
    // wlc: 2 carries 4 active conns at weight 5, 7 is idle
    assert_eq!(picks(&mut t, 0, 1), vec![7]);
}

#[test]
fn a_new_service_is_added_to_a_live_table() {
    let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Rr, &[(1, 1)])]);
    let sum = t.apply_specs(&[
        sspec(80, SchedKind::Rr, &[(1, 1)]),
        sspec(8080, SchedKind::Rr, &[(5, 1)]),
    ]);
    assert_eq!(sum.services_added, 1);
    assert_eq!(sum.services_updated, 0);
    assert_eq!(t.lookup(&key(8080)), Some(1));
    assert_eq!(picks(&mut t, 1, 1), vec![5]);
}

#[test]
fn duplicates_in_specs_count_once() {
    let mut dup = sspec(80, SchedKind::Rr, &[(1, 1)]);
    let mut t = ServiceTable::from_specs(std::slice::from_ref(&dup));
    dup.dests.push(dspec(2, 1));
    dup.dests.push(dspec(2, 9));
    dup.dests.push(dspec(1, 9));
    let other = sspec(80, SchedKind::Wlc, &[]);
    let sum = t.apply_specs(&[dup, other]);
    assert_eq!(sum.dests_added, 1);
    assert_eq!(sum.scheds_replaced, 0, "second spec for the key ignored");
    let s = &t.services[0];
    assert_eq!(s.dests.len(), 2);
    assert_eq!(s.dests[idx(&t, 0, 2)].weight, 1, "first one wins");
    assert_eq!(s.dests[idx(&t, 0, 1)].weight, 1);
}
