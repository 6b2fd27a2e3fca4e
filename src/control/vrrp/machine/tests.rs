//! Unit tests of the VRRP state machine on a simulated clock (times in ms).
use super::*;
use crate::config::VrrpState;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(t: u64) -> Timestamp {
    Timestamp::from_millis(t)
}

fn us(t: u64) -> Timestamp {
    Timestamp::from_micros(t)
}

const ME: &str = "198.18.0.2";
const PEER: &str = "198.18.0.3";
const GROUP: &str = "224.0.0.18";

fn inst(priority: u8) -> VrrpInstance {
    VrrpInstance {
        name: "VI_1".into(),
        state: VrrpState::Backup,
        interface: "lfeth0".into(),
        virtual_router_id: 51,
        priority,
        advert_int: Duration::from_secs(1),
        version: VrrpVersion::V2,
        nopreempt: false,
        preempt_delay: Duration::ZERO,
        auth: Some(VrrpAuth::Pass("secret".into())),
        virtual_ipaddress: vec![IpPrefix {
            addr: ip("198.18.0.250"),
            len: 32,
        }],
        unicast_src_ip: None,
        unicast_peer: vec![],
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        notify: None,
        track_script: vec![],
        track_interface: vec![],
    }
}

fn v3(mut i: VrrpInstance) -> VrrpInstance {
    i.version = VrrpVersion::V3;
    i.auth = None;
    i
}

fn machine(i: &VrrpInstance) -> VrrpMachine {
    VrrpMachine::new(i, ip(ME)).unwrap()
}

/// The advert a peer with `prio` sends for `i`'s virtual router, as bytes,
/// with the metadata of a correct multicast delivery.
fn advert_from(i: &VrrpInstance, src: &str, prio: u8) -> (RxMeta, Vec<u8>) {
    let peer = VrrpMachine::new(i, ip(src)).unwrap();
    let dst = if i.unicast_peer.is_empty() {
        ip(GROUP)
    } else {
        ip(ME)
    };
    let bytes = peer.advert(prio).to_bytes(ip(src), dst).unwrap();
    (
        RxMeta {
            src: ip(src),
            dst,
            ttl: Some(255),
        },
        bytes,
    )
}

fn steps(a: &Actions) -> Vec<Action> {
    a.steps.clone()
}

fn become_master_steps(prio: u8) -> Vec<Action> {
    vec![
        Action::Advertise { priority: prio },
        Action::AddVips,
        Action::Announce,
        Action::Notify(NotifyState::Master),
    ]
}

/// A machine that became master by timeout at 3609.375 ms (v2, prio 100).
fn master_v2(prio: u8) -> (VrrpInstance, VrrpMachine, Timestamp) {
    let i = inst(prio);
    let mut m = machine(&i);
    m.start(ms(0));
    let t = m.next_deadline().unwrap();
    assert_eq!(steps(&m.on_timer(t)), become_master_steps(prio));
    (i, m, t)
}

#[test]
fn backup_becomes_master_after_master_down_interval_v2() {
    let i = inst(100);
    let mut m = machine(&i);
    assert_eq!(m.state(), State::Initialize);
    let a = m.start(ms(0));
    assert_eq!(
        steps(&a),
        vec![Action::RemoveVips, Action::Notify(NotifyState::Backup)]
    );
    assert_eq!(m.state(), State::Backup);
    // Skew_Time = (256 - 100) / 256 s = 609.375 ms; MDI = 3 s + skew.
    assert_eq!(m.skew_time(), Duration::from_micros(609_375));
    assert_eq!(m.master_down_interval(), Duration::from_micros(3_609_375));
    assert_eq!(m.next_deadline(), Some(us(3_609_375)));
    assert!(m.on_timer(us(3_609_374)).steps.is_empty());
    assert_eq!(m.state(), State::Backup);
    assert_eq!(steps(&m.on_timer(us(3_609_375))), become_master_steps(100));
    assert_eq!(m.state(), State::Master);
    assert_eq!(m.stats().became_master, 1);
    // Then one advert per second, exactly.
    assert_eq!(m.next_deadline(), Some(us(4_609_375)));
    assert!(m.on_timer(us(4_609_374)).steps.is_empty());
    assert_eq!(
        steps(&m.on_timer(us(4_609_375))),
        vec![Action::Advertise { priority: 100 }]
    );
    assert_eq!(m.stats().adverts_tx, 2);
}

#[test]
fn configured_master_state_still_waits_like_keepalived() {
    let mut i = inst(150);
    i.state = VrrpState::Master;
    let mut m = machine(&i);
    m.start(ms(0));
    assert_eq!(m.state(), State::Backup);
    // (256 - 150) / 256 s = 414.0625 ms.
    assert_eq!(
        m.next_deadline(),
        Some(Timestamp::from_nanos(3_414_062_500))
    );
}

#[test]
fn address_owner_is_master_at_once() {
    let mut i = inst(255);
    i.state = VrrpState::Master;
    let mut m = machine(&i);
    assert_eq!(steps(&m.start(ms(0))), become_master_steps(255));
    assert_eq!(m.state(), State::Master);
    assert_eq!(m.next_deadline(), Some(ms(1000)));
    assert!(m.on_timer(ms(999)).steps.is_empty());
    assert_eq!(
        steps(&m.on_timer(ms(1000))),
        vec![Action::Advertise { priority: 255 }]
    );
    // A second start is a no-op.
    assert!(m.start(ms(1500)).steps.is_empty());
}

#[test]
fn v3_skew_scales_with_the_advert_interval() {
    let mut i = v3(inst(100));
    i.advert_int = Duration::from_millis(500);
    let mut m = machine(&i);
    assert_eq!(m.version(), Version::V3);
    m.start(ms(0));
    // Skew = 156 * 0.5 s / 256 = 304.6875 ms; MDI = 1.5 s + skew.
    assert_eq!(m.skew_time(), Duration::from_nanos(304_687_500));
    assert_eq!(
        m.next_deadline(),
        Some(Timestamp::from_nanos(1_804_687_500))
    );
}

#[test]
fn v3_backup_adopts_the_master_s_interval() {
    let i = v3(inst(100));
    let mut m = machine(&i);
    m.start(ms(0));
    let mut theirs = v3(inst(200));
    theirs.advert_int = Duration::from_secs(2);
    let (rx, b) = advert_from(&theirs, PEER, 200);
    let a = m.on_advert(ms(500), rx, &b);
    assert!(a.steps.is_empty());
    assert_eq!(m.master_adver_int(), Duration::from_secs(2));
    assert_eq!(m.stats().interval_mismatch, 1);
    assert_eq!(a.log.len(), 1, "{:?}", a.log);
    // Our priority, their interval: skew = 156 * 2 s / 256 = 1.21875 s.
    assert_eq!(
        m.next_deadline(),
        Some(ms(500 + 6000 + 1218) + Duration::from_micros(750))
    );
    // The mismatch is logged once, counted every time.
    let a = m.on_advert(ms(2500), rx, &b);
    assert!(a.log.is_empty());
    assert_eq!(m.stats().interval_mismatch, 2);
    assert_eq!(m.stats().adverts_rx, 2);
}

#[test]
fn backup_resets_its_timer_on_equal_or_higher_priority() {
    let i = inst(100);
    let mut m = machine(&i);
    m.start(ms(0));
    for (t, prio) in [(1000, 150), (2000, 100), (3000, 254)] {
        let (rx, b) = advert_from(&i, PEER, prio);
        assert!(m.on_advert(ms(t), rx, &b).steps.is_empty());
        assert_eq!(m.next_deadline(), Some(ms(t) + m.master_down_interval()));
    }
    assert_eq!(m.master(), Some((ip(PEER), 254)));
    // Adverts stop at 3 s: master at 3 s + MDI.
    assert!(m.on_timer(us(6_609_374)).steps.is_empty());
    assert_eq!(steps(&m.on_timer(us(6_609_375))), become_master_steps(100));
}

#[test]
fn preempting_backup_ignores_a_lower_priority_master() {
    let i = inst(100);
    let mut m = machine(&i);
    m.start(ms(0));
    let (rx, b) = advert_from(&i, PEER, 50);
    for t in [0, 1000, 2000, 3000] {
        assert!(m.on_advert(ms(t), rx, &b).steps.is_empty());
    }
    assert_eq!(m.stats().adverts_rx, 4);
    // The timer set at start was never reset.
    assert_eq!(steps(&m.on_timer(us(3_609_375))), become_master_steps(100));
}

#[test]
fn nopreempt_backup_follows_any_master() {
    let mut i = inst(100);
    i.nopreempt = true;
    let mut m = machine(&i);
    m.start(ms(0));
    let (rx, b) = advert_from(&i, PEER, 50);
    for t in (0..=10_000).step_by(1000) {
        m.on_advert(ms(t), rx, &b);
        assert!(m.on_timer(ms(t + 999)).steps.is_empty());
    }
    assert_eq!(m.state(), State::Backup);
    // Adverts stop after 10 s.
    assert!(m.on_timer(us(13_609_374)).steps.is_empty());
    assert_eq!(steps(&m.on_timer(us(13_609_375))), become_master_steps(100));
}

#[test]
fn preempt_delay_accepts_lower_priority_for_the_delay_only() {
    let mut i = inst(100);
    i.preempt_delay = Duration::from_secs(5);
    let mut m = machine(&i);
    m.start(ms(0));
    let (rx, b) = advert_from(&i, PEER, 50);
    // First lower advert at 0 starts the 5 s delay: the adverts at 0..4 s
    // reset the timer, the one at 5 s no longer does.
    for t in (0..=7000).step_by(1000) {
        m.on_advert(ms(t), rx, &b);
        let fired = m.on_timer(ms((t + 999).min(7609)));
        assert!(fired.steps.is_empty(), "at {t}: {fired:?}");
    }
    assert_eq!(m.state(), State::Backup);
    assert_eq!(m.next_deadline(), Some(us(7_609_375)));
    assert_eq!(steps(&m.on_timer(us(7_609_375))), become_master_steps(100));
}

#[test]
fn preempt_delay_restarts_after_a_higher_priority_master() {
    let mut i = inst(100);
    i.preempt_delay = Duration::from_secs(5);
    let mut m = machine(&i);
    m.start(ms(0));
    let (lo_rx, lo) = advert_from(&i, PEER, 50);
    let (hi_rx, hi) = advert_from(&i, "198.18.0.4", 200);
    m.on_advert(ms(0), lo_rx, &lo); // delay until 5 s
    m.on_advert(ms(3000), hi_rx, &hi); // clears it
    m.on_advert(ms(4000), lo_rx, &lo); // a new delay, until 9 s
    m.on_advert(ms(8000), lo_rx, &lo); // still accepted
    assert_eq!(m.next_deadline(), Some(us(11_609_375)));
    m.on_advert(ms(9000), lo_rx, &lo); // delay over: discarded
    assert_eq!(m.next_deadline(), Some(us(11_609_375)));
}

#[test]
fn priority_zero_makes_the_backup_take_over_after_skew_time() {
    let i = inst(100);
    let mut m = machine(&i);
    m.start(ms(0));
    let (rx, b) = advert_from(&i, PEER, 150);
    m.on_advert(ms(1000), rx, &b);
    let (rx0, b0) = advert_from(&i, PEER, 0);
    assert!(m.on_advert(ms(1500), rx0, &b0).steps.is_empty());
    assert_eq!(m.stats().priority_zero_rx, 1);
    assert_eq!(m.next_deadline(), Some(us(2_109_375)));
    assert!(m.on_timer(us(2_109_374)).steps.is_empty());
    assert_eq!(steps(&m.on_timer(us(2_109_375))), become_master_steps(100));
}

#[test]
fn master_yields_to_a_higher_priority() {
    let (i, mut m, t0) = master_v2(100);
    let (rx, b) = advert_from(&i, PEER, 150);
    let t = t0 + Duration::from_millis(200);
    let a = m.on_advert(t, rx, &b);
    assert_eq!(
        steps(&a),
        vec![Action::RemoveVips, Action::Notify(NotifyState::Backup)]
    );
    assert_eq!(m.state(), State::Backup);
    assert_eq!(m.stats().released_master, 1);
    assert_eq!(m.next_deadline(), Some(t + m.master_down_interval()));
}

#[test]
fn master_election_ties_go_to_the_higher_primary_address() {
    let (i, mut m, t0) = master_v2(100);
    // Same priority from a lower address: we stay and assert ourselves.
    let (rx, b) = advert_from(&i, "198.18.0.1", 100);
    let t = t0 + Duration::from_millis(300);
    assert_eq!(
        steps(&m.on_advert(t, rx, &b)),
        vec![Action::Advertise { priority: 100 }]
    );
    assert_eq!(m.state(), State::Master);
    // Same priority from a higher one: we yield.
    let (rx, b) = advert_from(&i, PEER, 100);
    m.on_advert(t, rx, &b);
    assert_eq!(m.state(), State::Backup);
}

#[test]
fn master_answers_lower_priority_and_priority_zero_at_once() {
    let (i, mut m, t0) = master_v2(100);
    let t = t0 + Duration::from_millis(400);
    for prio in [50, 0] {
        let (rx, b) = advert_from(&i, PEER, prio);
        assert_eq!(
            steps(&m.on_advert(t, rx, &b)),
            vec![Action::Advertise { priority: 100 }]
        );
        assert_eq!(m.state(), State::Master);
        // The advert timer restarts from now.
        assert_eq!(m.next_deadline(), Some(t + Duration::from_secs(1)));
    }
}

#[test]
fn master_repeats_announcements_after_garp_master_delay() {
    let (_, mut m, t0) = master_v2(100);
    let mut announced = Vec::new();
    let mut t = t0;
    while t < t0 + Duration::from_secs(7) {
        t = m.next_deadline().unwrap();
        let a = m.on_timer(t);
        if a.steps.contains(&Action::Announce) {
            announced.push(t);
        }
    }
    assert_eq!(announced, vec![t0 + Duration::from_secs(5)]);
}

#[test]
fn shutdown_of_a_master_sends_priority_zero_and_drops_the_vips() {
    let (_, mut m, t0) = master_v2(100);
    let a = m.shutdown(t0 + Duration::from_millis(10));
    assert_eq!(
        steps(&a),
        vec![
            Action::Advertise { priority: 0 },
            Action::RemoveVips,
            Action::Notify(NotifyState::Stop)
        ]
    );
    assert_eq!(m.state(), State::Initialize);
    assert_eq!(m.next_deadline(), None);
    assert_eq!(m.stats().priority_zero_tx, 1);
    // Nothing more happens.
    assert!(m.on_timer(t0 + Duration::from_secs(10)).steps.is_empty());
    assert!(m.shutdown(t0 + Duration::from_secs(10)).steps.is_empty());
}

#[test]
fn shutdown_of_a_backup_only_notifies() {
    let i = inst(100);
    let mut m = machine(&i);
    m.start(ms(0));
    assert_eq!(
        steps(&m.shutdown(ms(100))),
        vec![Action::Notify(NotifyState::Stop)]
    );
    assert_eq!(m.stats().adverts_tx, 0);
}

/// Every bad advert is dropped and counted, and none of them moves a master
/// that the same advert, made valid, would move.
#[test]
fn bad_adverts_are_rejected_and_counted() {
    let (i, mut m, t0) = master_v2(100);
    let t = t0 + Duration::from_millis(100);
    let (good_rx, good) = advert_from(&i, PEER, 254);
    let mut cases: Vec<(Reject, RxMeta, Vec<u8>)> = Vec::new();
    cases.push((
        Reject::Ttl,
        RxMeta {
            ttl: Some(64),
            ..good_rx
        },
        good.clone(),
    ));
    let mut other = inst(254);
    other.virtual_router_id = 52;
    cases.push((Reject::Vrid, good_rx, advert_from(&other, PEER, 254).1));
    cases.push((
        Reject::Version,
        good_rx,
        advert_from(&v3(inst(254)), PEER, 254).1,
    ));
    let mut wrong_pass = inst(254);
    wrong_pass.auth = Some(VrrpAuth::Pass("guess".into()));
    cases.push((
        Reject::AuthFailure,
        good_rx,
        advert_from(&wrong_pass, PEER, 254).1,
    ));
    let mut no_auth = inst(254);
    no_auth.auth = None;
    cases.push((
        Reject::AuthType,
        good_rx,
        advert_from(&no_auth, PEER, 254).1,
    ));
    let mut slow = inst(254);
    slow.advert_int = Duration::from_secs(2);
    cases.push((Reject::Interval, good_rx, advert_from(&slow, PEER, 254).1));
    let mut bad_sum = good.clone();
    bad_sum[7] ^= 1;
    cases.push((Reject::Checksum, good_rx, bad_sum));
    let mut bad_type = good.clone();
    bad_type[0] = 0x22;
    cases.push((Reject::Type, good_rx, bad_type));
    cases.push((Reject::Length, good_rx, good[..good.len() - 1].to_vec()));
    cases.push((Reject::Length, good_rx, Vec::new()));
    cases.push((
        Reject::Destination,
        RxMeta {
            dst: ip(ME),
            ..good_rx
        },
        good.clone(),
    ));
    cases.push((
        Reject::Loop,
        RxMeta {
            src: ip(ME),
            ..good_rx
        },
        good.clone(),
    ));
    for (want, rx, bytes) in &cases {
        let before = m.stats().rejected(*want);
        let a = m.on_advert(t, *rx, bytes);
        assert!(a.steps.is_empty(), "{want:?}: {a:?}");
        assert_eq!(m.stats().rejected(*want), before + 1, "{want:?}");
        assert_eq!(m.state(), State::Master, "{want:?}");
    }
    assert_eq!(m.stats().rejected(Reject::Length), 2);
    assert_eq!(m.stats().adverts_rx, 0);
    let total: u64 = m.stats().rejected.iter().sum();
    assert_eq!(total, cases.len() as u64);
    // The positive control: the good one does move it.
    m.on_advert(t, good_rx, &good);
    assert_eq!(m.state(), State::Backup);
    assert_eq!(m.stats().adverts_rx, 1);
}

#[test]
fn unknown_hop_limit_is_not_held_against_an_advert() {
    let i = inst(100);
    let mut m = machine(&i);
    m.start(ms(0));
    let (rx, b) = advert_from(&i, PEER, 200);
    m.on_advert(ms(10), RxMeta { ttl: None, ..rx }, &b);
    assert_eq!(m.stats().adverts_rx, 1);
}

#[test]
fn address_list_mismatch_is_counted_but_accepted() {
    let i = inst(100);
    let mut m = machine(&i);
    m.start(ms(0));
    let mut theirs = inst(200);
    theirs.virtual_ipaddress.push(IpPrefix {
        addr: ip("198.18.0.251"),
        len: 32,
    });
    let (rx, b) = advert_from(&theirs, PEER, 200);
    let a = m.on_advert(ms(1000), rx, &b);
    assert_eq!(m.stats().address_list_mismatch, 1);
    assert_eq!(m.stats().adverts_rx, 1);
    assert_eq!(a.log.len(), 1);
    assert_eq!(m.next_deadline(), Some(ms(1000) + m.master_down_interval()));
    // Same count, another address.
    theirs.virtual_ipaddress = vec![IpPrefix {
        addr: ip("198.18.0.99"),
        len: 32,
    }];
    let (rx, b) = advert_from(&theirs, PEER, 200);
    m.on_advert(ms(2000), rx, &b);
    assert_eq!(m.stats().address_list_mismatch, 2);
}

#[test]
fn rejections_are_logged_once_per_reason_until_the_state_changes() {
    let i = inst(100);
    let mut m = machine(&i);
    m.start(ms(0));
    let (rx, b) = advert_from(&i, PEER, 200);
    let ttl1 = RxMeta { ttl: Some(1), ..rx };
    assert_eq!(m.on_advert(ms(1), ttl1, &b).log.len(), 1);
    assert!(m.on_advert(ms(2), ttl1, &b).log.is_empty());
    assert_eq!(m.stats().rejected(Reject::Ttl), 2);
    // Another reason is logged.
    let mut bad = b.clone();
    bad[7] ^= 0xff;
    assert_eq!(m.on_advert(ms(3), rx, &bad).log.len(), 1);
    // After a state change the first one is logged again.
    let t = m.next_deadline().unwrap();
    m.on_timer(t);
    assert_eq!(m.state(), State::Master);
    assert_eq!(m.on_advert(t, ttl1, &b).log.len(), 1);
}

#[test]
fn unicast_instances_check_the_peer_not_the_ttl() {
    let mut i = inst(100);
    i.unicast_peer = vec![ip(PEER)];
    let mut m = machine(&i);
    m.start(ms(0));
    let (rx, b) = advert_from(&i, PEER, 200);
    // Unicast adverts may have crossed routers: TTL is not checked.
    m.on_advert(
        ms(10),
        RxMeta {
            ttl: Some(60),
            ..rx
        },
        &b,
    );
    assert_eq!(m.stats().adverts_rx, 1);
    // A stranger.
    let (srx, sb) = advert_from(&i, "198.18.0.77", 200);
    m.on_advert(ms(20), srx, &sb);
    assert_eq!(m.stats().rejected(Reject::UnknownPeer), 1);
    // Multicast to a unicast instance.
    let mut mc = i.clone();
    mc.unicast_peer.clear();
    let (mrx, mb) = advert_from(&mc, PEER, 200);
    m.on_advert(ms(30), mrx, &mb);
    assert_eq!(m.stats().rejected(Reject::Destination), 1);
    assert_eq!(m.stats().adverts_rx, 1);
}

#[test]
fn ipv6_instances_run_v3_and_check_against_the_link_local_primary() {
    let mut i = inst(100);
    i.auth = None;
    i.virtual_ipaddress = vec![IpPrefix {
        addr: ip("2001:2::250"),
        len: 128,
    }];
    let mut m = VrrpMachine::new(&i, ip("fe80::1f:ff:fe00:2")).unwrap();
    assert_eq!(m.version(), Version::V3);
    assert_eq!(m.family(), Family::V6);
    m.start(ms(0));
    let peer = VrrpMachine::new(&i, ip("fe80::1f:ff:fe00:3")).unwrap();
    let (src, dst) = (ip("fe80::1f:ff:fe00:3"), ip("ff02::12"));
    let b = peer.advert(200).to_bytes(src, dst).unwrap();
    m.on_advert(
        ms(5),
        RxMeta {
            src,
            dst,
            ttl: Some(255),
        },
        &b,
    );
    assert_eq!(m.stats().adverts_rx, 1);
    assert_eq!(m.master(), Some((src, 200)));
    // A v4 primary for a v6 instance is refused.
    assert!(matches!(
        VrrpMachine::new(&i, ip(ME)),
        Err(MachineError::Family { .. })
    ));
}

#[test]
fn ah_authentication_is_refused() {
    let mut i = inst(100);
    i.auth = Some(VrrpAuth::Ah("x".into()));
    assert_eq!(
        VrrpMachine::new(&i, ip(ME)).unwrap_err(),
        MachineError::AhUnsupported("VI_1".into())
    );
}

#[test]
fn adverts_before_start_are_ignored() {
    let i = inst(100);
    let mut m = machine(&i);
    let (rx, b) = advert_from(&i, PEER, 200);
    assert_eq!(m.on_advert(ms(0), rx, &b), Actions::default());
    assert_eq!(m.stats().adverts_rx, 0);
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn our_advert_is_keepalived_compatible_bytes() {
    // keepalived 2.2.7's advert for VRID 51, priority 100, 198.18.0.250,
    // PASS "1111", 1 s (see wire::vrrp's fixtures).
    let mut i = inst(100);
    i.auth = Some(VrrpAuth::Pass("1111".into()));
    let m = machine(&i);
    let b = m.advert(100).to_bytes(ip("198.18.0.3"), ip(GROUP)).unwrap();
    assert_eq!(
        b,
        [
            0x21, 0x33, 0x64, 0x01, 0x01, 0x01, 0x50, 0x5b, 0xc6, 0x12, 0x00, 0xfa, 0x31, 0x31,
            0x31, 0x31, 0, 0, 0, 0
        ]
    );
}

#[test]
fn notify_commands_follow_keepalived() {
    let mut i = inst(120);
    i.notify_master = Some("/usr/local/bin/to-master --vip '198.18.0.250 x'".into());
    i.notify_backup = Some("/bin/true".into());
    i.notify = Some("/etc/lvsfwd/notify.sh \"a b\"".into());
    let m = machine(&i);
    assert_eq!(
        m.notify_commands(NotifyState::Master),
        vec![
            vec!["/usr/local/bin/to-master", "--vip", "198.18.0.250 x"],
            vec![
                "/etc/lvsfwd/notify.sh",
                "a b",
                "INSTANCE",
                "VI_1",
                "MASTER",
                "120"
            ],
        ]
    );
    assert_eq!(
        m.notify_commands(NotifyState::Backup),
        vec![
            vec!["/bin/true"],
            vec![
                "/etc/lvsfwd/notify.sh",
                "a b",
                "INSTANCE",
                "VI_1",
                "BACKUP",
                "120"
            ],
        ]
    );
    assert_eq!(
        m.notify_commands(NotifyState::Stop),
        vec![vec![
            "/etc/lvsfwd/notify.sh",
            "a b",
            "INSTANCE",
            "VI_1",
            "STOP",
            "120"
        ]]
    );
    assert!(
        machine(&inst(1))
            .notify_commands(NotifyState::Master)
            .is_empty()
    );
}

#[test]
fn notify_scripts_split_once_and_unclosed_quotes_are_refused() {
    // Quotes and escapes as for every script line (control::script::argv).
    let mut i = inst(100);
    i.notify_backup = Some("x 'it\\s' \"q\\\"q\" a\\ b $HOME;|".into());
    assert_eq!(
        machine(&i).notify_commands(NotifyState::Backup),
        vec![vec!["x", "it\\s", "q\"q", "a b", "$HOME;|"]]
    );
    // A line without a word is no script, as when none is configured.
    i.notify_backup = Some("   ".into());
    assert!(machine(&i).notify_commands(NotifyState::Backup).is_empty());
    // A line that cannot be split is refused at construction, never run.
    for (key, line, error) in [
        ("notify_master", "/bin/x 'a b", ArgvError::UnclosedQuote),
        ("notify", "/bin/x \"a", ArgvError::UnclosedQuote),
        ("notify_fault", "/bin/x a\\", ArgvError::TrailingBackslash),
    ] {
        let mut i = inst(100);
        match key {
            "notify_master" => i.notify_master = Some(line.into()),
            "notify" => i.notify = Some(line.into()),
            _ => i.notify_fault = Some(line.into()),
        }
        let err = VrrpMachine::new(&i, ip(ME)).unwrap_err();
        assert_eq!(
            err,
            MachineError::Script {
                name: "VI_1".into(),
                key,
                line: line.into(),
                error,
            }
        );
        assert!(
            err.to_string()
                .starts_with(&format!("vrrp_instance VI_1: {key} `{line}`: ")),
            "{err}"
        );
    }
    let mut i = inst(100);
    i.notify_backup = Some("/bin/x 'unclosed".into());
    assert_eq!(
        VrrpMachine::new(&i, ip(ME)).unwrap_err().to_string(),
        "vrrp_instance VI_1: notify_backup `/bin/x 'unclosed`: unclosed quote"
    );
}

#[test]
fn reject_names_are_unique() {
    let mut names: Vec<_> = Reject::ALL.iter().map(|r| r.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Reject::ALL.len());
    for (i, r) in Reject::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
    let s = VrrpStats::default().summary();
    assert!(
        s.contains("bad_ttl 0") && s.contains("bad_unknown_peer 0"),
        "{s}"
    );
}

#[test]
fn interface_down_is_fault_and_up_starts_over() {
    let (mut i, mut m, t) = master_v2(100);
    // Master: the VIPs go, notify_fault runs, nothing more is sent.
    let a = m.link_down(t + Duration::from_millis(10));
    assert_eq!(
        steps(&a),
        vec![Action::RemoveVips, Action::Notify(NotifyState::Fault)]
    );
    assert_eq!(m.state(), State::Fault);
    assert_eq!(m.next_deadline(), None, "no timers in FAULT");
    assert!(steps(&m.on_timer(t + Duration::from_secs(10))).is_empty());
    // Adverts are ignored: a lower priority would otherwise be answered.
    let (rx, bytes) = advert_from(&i, PEER, 50);
    assert!(steps(&m.on_advert(t + Duration::from_secs(11), rx, &bytes)).is_empty());
    assert!(steps(&m.link_down(t + Duration::from_secs(12))).is_empty());
    // Up again: Backup with a fresh down timer, as at start.
    let up = t + Duration::from_secs(20);
    let a = m.link_up(up);
    assert_eq!(
        steps(&a),
        vec![Action::RemoveVips, Action::Notify(NotifyState::Backup)]
    );
    assert_eq!(m.state(), State::Backup);
    assert_eq!(m.next_deadline(), Some(up + m.master_down_interval()));
    assert!(steps(&m.link_up(up)).is_empty(), "only FAULT reacts to up");
    // A Backup goes to FAULT too, without touching addresses.
    assert_eq!(
        steps(&m.link_down(up + Duration::from_secs(1))),
        vec![Action::Notify(NotifyState::Fault)]
    );
    // notify_fault, then the generic notify with FAULT.
    i.notify_fault = Some("/usr/local/bin/fault one".into());
    i.notify = Some("/usr/local/bin/all".into());
    let m = machine(&i);
    assert_eq!(
        m.notify_commands(NotifyState::Fault),
        vec![
            vec!["/usr/local/bin/fault".to_string(), "one".into()],
            vec![
                "/usr/local/bin/all".to_string(),
                "INSTANCE".into(),
                i.name.clone(),
                "FAULT".into(),
                "100".into()
            ],
        ]
    );
}

#[test]
fn tracked_fault_of_a_master_sends_priority_zero_when_its_link_works() {
    let (_, mut m, t) = master_v2(100);
    let a = m.fault(t, "tracked script chk failed", true);
    assert_eq!(
        steps(&a),
        vec![
            Action::Advertise { priority: 0 },
            Action::RemoveVips,
            Action::Notify(NotifyState::Fault)
        ]
    );
    assert_eq!(m.state(), State::Fault);
    assert_eq!(
        a.log,
        vec!["tracked script chk failed: entering FAULT state"]
    );
    assert_eq!(m.next_deadline(), None);
    // Its own link down: no advert can go out.
    let (_, mut m, t) = master_v2(100);
    assert_eq!(
        steps(&m.fault(t, "interface down", false)),
        vec![Action::RemoveVips, Action::Notify(NotifyState::Fault)]
    );
    // Twice is nothing; clearing starts over as Backup.
    assert!(m.fault(t, "again", false).steps.is_empty());
    let a = m.clear_fault(t + Duration::from_secs(1), "tracking OK");
    assert_eq!(
        steps(&a),
        vec![Action::RemoveVips, Action::Notify(NotifyState::Backup)]
    );
    assert_eq!(m.state(), State::Backup);
}

#[test]
fn a_tracked_object_failing_before_start_is_fault_at_once() {
    let i = inst(100);
    let mut m = machine(&i);
    let a = m.fault(ms(0), "tracked script chk failed", true);
    assert_eq!(steps(&a), vec![Action::Notify(NotifyState::Fault)]);
    assert_eq!(m.state(), State::Fault);
}

#[test]
fn effective_priority_changes_adverts_and_the_election() {
    // A master whose priority drops advertises it at once, and a better
    // peer's advert (which it would have beaten before) now demotes it.
    let (i, mut m, t) = master_v2(100);
    assert_eq!(m.base_priority(), 100);
    let a = m.set_priority(t, 60);
    assert_eq!(steps(&a), vec![Action::Advertise { priority: 60 }]);
    assert_eq!(m.priority(), 60);
    assert!(m.set_priority(t, 60).steps.is_empty());
    let (rx, b) = advert_from(&i, PEER, 80);
    let a = m.on_advert(t + Duration::from_millis(10), rx, &b);
    assert_eq!(
        steps(&a),
        vec![Action::RemoveVips, Action::Notify(NotifyState::Backup)]
    );
    // As backup with a raised priority it preempts the peer: their
    // adverts no longer reset the timer, which uses the new skew.
    let t2 = t + Duration::from_millis(20);
    m.set_priority(t2, 120);
    assert_eq!(
        m.skew_time(),
        Duration::from_nanos(136 * 1_000_000_000 / 256)
    );
    let (rx, b) = advert_from(&i, PEER, 80);
    let deadline = m.next_deadline().unwrap();
    m.on_advert(t2 + Duration::from_millis(500), rx, &b);
    assert_eq!(m.next_deadline(), Some(deadline));
    assert_eq!(steps(&m.on_timer(deadline)), become_master_steps(120));
}

#[test]
fn a_sync_group_member_only_wants_to_be_master_until_the_group_decides() {
    let i = inst(100);
    let mut m = machine(&i);
    m.set_in_group(true);
    m.start(ms(0));
    let t = m.next_deadline().unwrap();
    assert!(m.on_timer(t).steps.is_empty());
    assert_eq!(m.state(), State::Backup);
    assert!(m.wants_master());
    // It keeps waiting a master-down interval at a time.
    assert_eq!(m.next_deadline(), Some(t + m.master_down_interval()));
    // A master heard again: it no longer wants to.
    let (rx, b) = advert_from(&i, PEER, 150);
    m.on_advert(t + Duration::from_millis(10), rx, &b);
    assert!(!m.wants_master());
    // The group makes it master, and backup again.
    let t2 = t + Duration::from_millis(20);
    assert_eq!(steps(&m.force_master(t2)), become_master_steps(100));
    assert!(m.force_master(t2).steps.is_empty());
    assert_eq!(
        steps(&m.force_backup(t2)),
        vec![Action::RemoveVips, Action::Notify(NotifyState::Backup)]
    );
    assert_eq!(m.state(), State::Backup);
    assert_eq!(m.stats().released_master, 1);
}

/// A machine for `i` with the sync hold (`group`: a sync-group member),
/// started at 0.
fn with_hold(i: &VrrpInstance, group: bool) -> VrrpMachine {
    let mut m = machine(i);
    m.set_in_group(group);
    m.set_preempt_hold(true);
    m.start(ms(0));
    m
}

/// `m` hears a live master's priority-50 adverts at `times` (ms).
fn lower_adverts(i: &VrrpInstance, m: &mut VrrpMachine, times: &[u64]) {
    let (rx, b) = advert_from(i, PEER, 50);
    for &t in times {
        assert!(m.on_advert(ms(t), rx, &b).steps.is_empty());
    }
}

/// A backup (priority 100) with the sync hold that discards a live
/// master's priority-50 adverts at 0, 1, 2 and 3 s: its timer runs out at
/// 3609.375 ms and it holds instead of taking over.
fn holding_backup() -> (VrrpInstance, VrrpMachine) {
    let i = inst(100);
    let mut m = with_hold(&i, false);
    lower_adverts(&i, &mut m, &[0, 1000, 2000, 3000]);
    let a = m.on_timer(us(3_609_375));
    assert!(a.steps.is_empty(), "{a:?}");
    assert!(m.holding());
    assert_eq!(m.state(), State::Backup);
    assert!(
        a.log[0].contains("preempting 198.18.0.3 (priority 50)"),
        "{a:?}"
    );
    (i, m)
}

#[test]
fn preempting_a_live_master_waits_for_the_sync_table() {
    let (i, mut m) = holding_backup();
    // The master goes on advertising: the hold goes on.
    for t in [4000, 5000] {
        lower_adverts(&i, &mut m, &[t]);
        assert!(m.on_timer(ms(t + 999)).steps.is_empty());
    }
    // Until then: the master is dead only a Master_Down_Interval after
    // its last advert.
    assert_eq!(m.next_deadline(), Some(us(8_609_375)));
    assert_eq!(steps(&m.table_ready(ms(5200))), become_master_steps(100));
    assert!(!m.holding());
    assert!(m.table_ready(ms(5300)).steps.is_empty());
}

#[test]
fn a_dead_master_is_taken_over_at_once_with_the_hold() {
    let i = inst(100);
    let mut m = with_hold(&i, false);
    // A higher-priority master, then silence; and a lower one's adverts
    // that stopped long ago do not count either.
    let (lo_rx, lo) = advert_from(&i, "198.18.0.4", 50);
    m.on_advert(ms(0), lo_rx, &lo);
    let (rx, b) = advert_from(&i, PEER, 150);
    m.on_advert(ms(4000), rx, &b);
    m.on_advert(ms(5000), rx, &b);
    assert_eq!(steps(&m.on_timer(us(8_609_375))), become_master_steps(100));
    assert!(!m.holding());
    // Started from the lower one's adverts alone, after they stopped.
    let mut m = with_hold(&i, false);
    m.on_advert(ms(0), lo_rx, &lo);
    assert!(m.on_timer(us(3_609_374)).steps.is_empty());
    assert_eq!(steps(&m.on_timer(us(3_609_375))), become_master_steps(100));
}

#[test]
fn a_master_that_stops_advertising_during_the_hold_is_taken_over() {
    let (_, mut m) = holding_backup();
    // Its last advert at 3 s: dead at 3 s + Master_Down_Interval.
    assert_eq!(m.next_deadline(), Some(us(6_609_375)));
    assert!(m.on_timer(us(6_609_374)).steps.is_empty());
    let a = m.on_timer(us(6_609_375));
    assert_eq!(steps(&a), become_master_steps(100));
    assert!(a.log[0].contains("stopped advertising"), "{a:?}");
}

#[test]
fn priority_zero_during_the_hold_takes_over_after_skew_time() {
    let (i, mut m) = holding_backup();
    let (rx0, b0) = advert_from(&i, PEER, 0);
    let a = m.on_advert(ms(3700), rx0, &b0);
    assert!(a.steps.is_empty());
    assert!(!m.holding());
    assert_eq!(m.next_deadline(), Some(us(4_309_375)));
    assert_eq!(steps(&m.on_timer(us(4_309_375))), become_master_steps(100));
}

#[test]
fn an_advert_we_must_accept_calls_the_hold_off() {
    let (i, mut m) = holding_backup();
    let (rx, b) = advert_from(&i, PEER, 120);
    let a = m.on_advert(ms(3800), rx, &b);
    assert!(a.steps.is_empty());
    assert!(a.log[0].contains("called off"), "{a:?}");
    assert!(!m.holding());
    assert!(m.table_ready(ms(3900)).steps.is_empty());
    assert_eq!(m.state(), State::Backup);
    assert_eq!(m.next_deadline(), Some(us(7_409_375)));
    // Into FAULT and back: no hold is left over.
    let (_, mut m) = holding_backup();
    m.fault(ms(3700), "interface down", false);
    assert!(!m.holding());
    assert!(m.table_ready(ms(3800)).steps.is_empty());
}

#[test]
fn a_sync_group_member_holds_before_it_wants_to_be_master() {
    let i = inst(100);
    let mut m = with_hold(&i, true);
    lower_adverts(&i, &mut m, &[0, 1000, 2000, 3000]);
    assert!(m.on_timer(us(3_609_375)).steps.is_empty());
    assert!(m.holding() && !m.wants_master());
    assert!(m.table_ready(ms(3700)).steps.is_empty());
    assert!(m.wants_master() && !m.holding());
    // While the group decides, the timer only keeps it wanting.
    lower_adverts(&i, &mut m, &[4000]);
    let t = m.next_deadline().unwrap();
    assert!(m.on_timer(t).steps.is_empty());
    assert!(m.wants_master() && !m.holding());
}

#[test]
fn a_priority_change_moves_the_backups_timer_by_the_skew() {
    // keepalived's vrrp_set_effective_priority: a running master-down
    // timer moves by the change of Master_Down_Interval.
    let i = inst(90);
    let mut m = machine(&i);
    m.start(ms(0));
    let (rx, b) = advert_from(&i, PEER, 100);
    m.on_advert(ms(1000), rx, &b);
    // (256 - 90) / 256 s = 648.4375 ms.
    assert_eq!(
        m.next_deadline(),
        Some(Timestamp::from_nanos(4_648_437_500))
    );
    m.set_priority(ms(1500), 110);
    // (256 - 110) / 256 s = 570.3125 ms: 78.125 ms earlier.
    assert_eq!(
        m.next_deadline(),
        Some(Timestamp::from_nanos(4_570_312_500))
    );
    m.set_priority(ms(1600), 90);
    assert_eq!(
        m.next_deadline(),
        Some(Timestamp::from_nanos(4_648_437_500))
    );
}
