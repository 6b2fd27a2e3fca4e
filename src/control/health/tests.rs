//! Health checking on a simulated clock: every rule of the module docs.

use std::net::SocketAddr;
use std::time::Duration;

use super::engine::{self, Action, CheckerId, Engine, ProbeOutcome, ProbeSpec};
use super::http::{self, HttpFailure, ResponseReader, UrlCheck};
use super::*;
use crate::config::{self, HttpProtocol, VirtualServer};
use crate::time::Timestamp;

fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

fn params(retry: u32, alpha: bool) -> CheckerParams {
    CheckerParams {
        delay_loop: Duration::from_secs(10),
        delay_before_retry: Duration::from_secs(2),
        retry,
        down_interval: Duration::from_secs(10),
        alpha,
        warmup: Duration::from_secs(10),
        confirm: 0,
    }
}

// ---------------------------------------------------------------- checker

#[test]
fn first_probe_is_a_random_share_of_warmup() {
    let c = Checker::new(params(1, false), secs(100), 0.25);
    assert_eq!(c.next_due(), Timestamp::from_millis(102_500));
    assert!(c.is_up() && !c.has_run());
    assert_eq!(
        Checker::new(params(1, false), secs(100), 7.0).next_due(),
        secs(110),
        "draws are clamped to [0, 1]"
    );
    assert_eq!(
        Checker::new(params(1, false), secs(100), f64::NAN).next_due(),
        secs(100)
    );
}

/// HTTP_GET / SSL_GET without fast_recovery (keepalived's http epilog: one
/// url per probe, a delay_loop apart; up once every url passed in a row).
#[test]
fn without_fast_recovery_every_url_must_pass_again() {
    let p = |confirm, alpha| CheckerParams {
        confirm,
        ..params(0, alpha)
    };
    // Two urls, down after a failure: the failed url passes, then both
    // urls again, a delay_loop apart: up at the third success.
    let mut c = Checker::new(p(2, false), secs(0), 0.0);
    assert_eq!(c.on_result(secs(0), false), Transition::Down);
    assert_eq!(c.on_result(secs(10), true), Transition::None);
    assert_eq!(c.next_due(), secs(20), "the next url a delay_loop later");
    assert_eq!(c.on_result(secs(20), true), Transition::None);
    // A failure while recovering retries after delay_before_retry and does
    // not start over.
    assert_eq!(c.on_result(secs(30), false), Transition::None);
    assert_eq!(c.next_due(), secs(32));
    assert!(!c.is_up());
    assert_eq!(c.on_result(secs(32), true), Transition::Up);
    // fast_recovery (confirm 0): the first success is enough.
    let mut c = Checker::new(p(0, false), secs(0), 0.0);
    assert_eq!(c.on_result(secs(0), false), Transition::Down);
    assert_eq!(c.on_result(secs(10), true), Transition::Up);
    // Alpha start: every url once (two successes); a failure on the way
    // is the first verdict, and recovery starts over (three).
    let mut c = Checker::new(p(2, true), secs(0), 0.0);
    assert_eq!(c.on_result(secs(0), true), Transition::None);
    assert_eq!(c.on_result(secs(10), true), Transition::Up);
    let mut c = Checker::new(p(2, true), secs(0), 0.0);
    assert_eq!(c.on_result(secs(0), true), Transition::None);
    assert_eq!(c.on_result(secs(10), false), Transition::StaysDown);
    assert_eq!(c.next_due(), secs(20));
    let ups: Vec<Transition> = [30, 40, 50]
        .iter()
        .map(|&s| c.on_result(secs(s), true))
        .collect();
    assert_eq!(ups, [Transition::None, Transition::None, Transition::Up]);
    // A single url, no alpha: the failed url, then the url again.
    let mut c = Checker::new(p(1, false), secs(0), 0.0);
    assert_eq!(c.on_result(secs(0), false), Transition::Down);
    assert_eq!(c.on_result(secs(10), true), Transition::None);
    assert_eq!(c.on_result(secs(20), true), Transition::Up);
}

/// The engine gives HTTP_GET its url count unless fast_recovery is set.
#[test]
fn fast_recovery_sets_the_confirmation() {
    let http = |extra: &str| {
        format!(
            "[virtual_server.real_server.http_get]\nurl = [{{ path = \"/a\" }}, {{ path = \"/b\" }}]\n{extra}"
        )
    };
    for (extra, want) in [("", 2), ("fast_recovery = true\n", 0)] {
        let vs = vss(&format!("{HEAD}{}", rs(1, 1, &http(extra))));
        let kind = &vs[0].real_servers[0].checks[0];
        assert_eq!(super::engine::params(kind).confirm, want, "{extra}");
    }
    let tcp = vss(&format!("{HEAD}{}", rs(1, 1, TCP)));
    assert_eq!(
        super::engine::params(&tcp[0].real_servers[0].checks[0]).confirm,
        0
    );
}

#[test]
fn first_verdict_needs_one_failure_only() {
    let mut c = Checker::new(params(3, false), secs(0), 0.0);
    assert_eq!(c.on_result(secs(0), false), Transition::Down);
    assert!(!c.is_up());
    assert_eq!(
        c.next_due(),
        secs(10),
        "down: next probe after down_interval"
    );
}

#[test]
fn failures_are_retried_then_the_checker_goes_down() {
    let mut c = Checker::new(params(2, false), secs(0), 0.0);
    assert_eq!(c.on_result(secs(0), true), Transition::None, "up stays up");
    assert_eq!(c.next_due(), secs(10));
    assert_eq!(c.on_result(secs(10), false), Transition::None);
    assert_eq!(c.next_due(), secs(12), "retry after delay_before_retry");
    assert_eq!(c.on_result(secs(12), false), Transition::None);
    assert_eq!(c.next_due(), secs(14));
    assert_eq!(
        c.on_result(secs(14), false),
        Transition::Down,
        "retry + 1 failures"
    );
    assert_eq!(c.next_due(), secs(24));
    // While down, failures change nothing and are not retried.
    assert_eq!(c.on_result(secs(24), false), Transition::None);
    assert_eq!(c.next_due(), secs(34));
    // One success is enough to come back.
    assert_eq!(c.on_result(secs(34), true), Transition::Up);
    assert_eq!(c.next_due(), secs(44));
    // A success in between resets the retries.
    assert_eq!(c.on_result(secs(44), false), Transition::None);
    assert_eq!(c.on_result(secs(46), true), Transition::None);
    assert_eq!(c.on_result(secs(56), false), Transition::None);
    assert_eq!(c.on_result(secs(58), false), Transition::None);
    assert_eq!(c.on_result(secs(60), false), Transition::Down);
}

#[test]
fn retry_zero_goes_down_at_the_first_failure() {
    let mut c = Checker::new(params(0, false), secs(0), 0.0);
    c.on_result(secs(0), true);
    assert_eq!(c.on_result(secs(10), false), Transition::Down);
}

#[test]
fn down_interval_is_used_while_down() {
    let mut p = params(1, false);
    p.down_interval = Duration::from_secs(30);
    let mut c = Checker::new(p, secs(0), 0.0);
    assert_eq!(c.on_result(secs(0), false), Transition::Down);
    assert_eq!(c.next_due(), secs(30));
    c.on_result(secs(30), false);
    assert_eq!(c.next_due(), secs(60));
}

#[test]
fn alpha_checkers_start_down() {
    let mut c = Checker::new(params(3, true), secs(0), 0.0);
    assert!(!c.is_up());
    assert_eq!(c.on_result(secs(0), true), Transition::Up);
    let mut c = Checker::new(params(3, true), secs(0), 0.0);
    assert_eq!(c.on_result(secs(0), false), Transition::StaysDown);
    assert_eq!(c.on_result(secs(10), false), Transition::None, "only once");
}

#[test]
fn migration_keeps_the_verdict_and_clamps_spent_retries() {
    let mut old = Checker::new(params(5, false), secs(0), 0.0);
    old.on_result(secs(0), true);
    old.on_result(secs(10), false);
    old.on_result(secs(12), false);
    let mut new = Checker::new(params(1, false), secs(13), 0.9);
    new.migrate_from(&old, secs(13));
    assert_eq!(new.next_due(), old.next_due());
    assert!(new.is_up() && new.has_run());
    // Two retries spent, the new retry is 1: the next failure is the last.
    assert_eq!(new.on_result(secs(14), false), Transition::Down);
    // A shorter delay_loop brings a far probe closer.
    let mut far = Checker::new(params(1, false), secs(0), 0.0);
    far.on_result(secs(0), true);
    assert_eq!(far.next_due(), secs(10));
    let mut p = params(1, false);
    p.delay_loop = Duration::from_secs(3);
    let mut near = Checker::new(p, secs(1), 1.0);
    near.migrate_from(&far, secs(1));
    assert_eq!(near.next_due(), secs(4));
}

// ----------------------------------------------------------------- engine

const HEAD: &str =
    "[[virtual_server]]\naddress = \"198.18.0.250:80\"\nlb_kind = \"DR\"\ndelay_loop = 10\n";

fn vss(text: &str) -> Vec<VirtualServer> {
    match config::parse_str(text, "lb.toml") {
        Ok(c) => c.virtual_servers,
        Err(e) => panic!("{e}"),
    }
}

fn rs(n: u8, weight: i32, extra: &str) -> String {
    format!(
        "\n[[virtual_server.real_server]]\naddress = \"198.18.0.{n}:80\"\nweight = {weight}\n\
         notify_up = \"/bin/up {n}\"\nnotify_down = \"/bin/down {n}\"\n{extra}"
    )
}

const TCP: &str = "[virtual_server.real_server.tcp_check]\nretry = 0\nconnect_timeout = 1\n";

fn sa(n: u8) -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::from([198, 18, 0, n]), 80)
}

fn notifies(acts: &[Action]) -> Vec<String> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Notify(v) => Some(v.join(" ")),
            Action::Event(_) => None,
        })
        .collect()
}

fn events(acts: &[Action]) -> Vec<HealthEvent> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(e.clone()),
            Action::Notify(_) => None,
        })
        .collect()
}

/// The engine started at t=0 (first probes within the 10 s warmup).
fn engine(text: &str) -> (Engine, Vec<Action>) {
    Engine::new(&vss(text), secs(0), 1)
}

/// The checker of real server `n` (its only one).
fn id_of(e: &Engine, view_order: usize) -> CheckerId {
    assert!(view_order < e.checkers());
    CheckerId(view_order)
}

fn alive(e: &Engine, n: u8) -> bool {
    let v = e.view();
    v.pools.values().next().unwrap().servers[&sa(n)].alive
}

fn probe(e: &mut Engine, id: CheckerId, t: u64, ok: bool) -> Vec<Action> {
    e.begin(id);
    let out = if ok {
        ProbeOutcome::Success
    } else {
        ProbeOutcome::Failure
    };
    e.on_result(id, secs(t), out)
}

#[test]
fn a_failing_server_goes_down_and_comes_back_with_its_notifies() {
    let (mut e, start) = engine(&format!("{HEAD}{}{}", rs(1, 1, TCP), rs(2, 1, "")));
    assert!(
        notifies(&start).is_empty(),
        "quorum 1 without script: nothing"
    );
    assert!(alive(&e, 1) && alive(&e, 2), "non-alpha servers start up");
    let id = id_of(&e, 0);
    assert_eq!(e.checkers(), 1, "rs2 has no checker");
    let acts = probe(&mut e, id, 1, false);
    assert_eq!(notifies(&acts), ["/bin/down 1"]);
    let key = *e.view().pools.keys().next().unwrap();
    assert_eq!(
        events(&acts),
        [HealthEvent::Server {
            service: key,
            server: sa(1),
            health: ServerHealth {
                alive: false,
                inhibit: false,
                weight: None
            }
        }]
    );
    assert!(!alive(&e, 1) && alive(&e, 2), "no checker: always up");
    assert!(
        probe(&mut e, id, 11, false).is_empty(),
        "down stays down quietly"
    );
    let acts = probe(&mut e, id, 21, true);
    assert_eq!(notifies(&acts), ["/bin/up 1"]);
    assert!(alive(&e, 1));
    assert!(probe(&mut e, id, 31, true).is_empty());
}

#[test]
fn due_begin_and_next_due_follow_the_probes_in_flight() {
    let (mut e, _) = engine(&format!("{HEAD}{}{}", rs(1, 1, TCP), rs(2, 1, TCP)));
    let last = e.next_due().unwrap();
    assert!(last <= secs(10), "first probes within the warmup");
    let due = e.due(secs(10));
    assert_eq!(due, [CheckerId(0), CheckerId(1)]);
    let spec = e.begin(CheckerId(0)).unwrap();
    assert_eq!(
        *spec,
        ProbeSpec::Tcp(engine::Conn {
            dst: sa(1),
            bind: None,
            bind_port: None,
            bind_if: None,
            fwmark: None,
            timeout: Duration::from_secs(1)
        })
    );
    assert_eq!(e.due(secs(10)), [CheckerId(1)], "in flight: not due again");
    e.on_result(CheckerId(0), secs(10), ProbeOutcome::Success);
    assert_eq!(e.checker(CheckerId(0)).unwrap().next_due(), secs(20));
    assert_eq!(e.due(secs(10)), [CheckerId(1)]);
    e.begin(CheckerId(1));
    assert_eq!(e.next_due(), Some(secs(20)));
    assert!(e.begin(CheckerId(9)).is_none());
    assert!(
        e.on_result(CheckerId(9), secs(10), ProbeOutcome::Failure)
            .is_empty()
    );
}

#[test]
fn a_server_is_up_only_while_every_checker_passes() {
    let both = "[virtual_server.real_server.tcp_check]\nretry = 0\n\
                [virtual_server.real_server.misc_check]\nmisc_path = \"/bin/check\"\n";
    let (mut e, _) = engine(&format!("{HEAD}{}", rs(1, 1, both)));
    let (tcp, misc) = (CheckerId(0), CheckerId(1));
    assert_eq!(notifies(&probe(&mut e, tcp, 1, false)), ["/bin/down 1"]);
    e.begin(misc);
    let acts = e.on_result(misc, secs(1), ProbeOutcome::Exited(1));
    assert!(acts.is_empty(), "already down: no second notify");
    assert!(
        probe(&mut e, tcp, 11, true).is_empty(),
        "misc still failing"
    );
    assert!(!alive(&e, 1));
    e.begin(misc);
    let acts = e.on_result(misc, secs(11), ProbeOutcome::Exited(0));
    assert_eq!(notifies(&acts), ["/bin/up 1"]);
    assert!(alive(&e, 1));
}

#[test]
fn quorum_with_hysteresis_and_sorry_server() {
    let vs = format!(
        "{HEAD}quorum = 4\nhysteresis = 1\nsorry_server = \"198.18.0.99:80\"\n\
         quorum_up = \"/bin/qup 'vs 1'\"\nquorum_down = \"/bin/qdown\"\n{}{}{}",
        rs(1, 1, TCP),
        rs(2, 2, TCP),
        rs(3, 3, TCP)
    );
    let (mut e, start) = engine(&vs);
    // 6 >= 4 + 1: gained at start-up, evaluated from "down".
    assert_eq!(notifies(&start), ["/bin/qup vs 1"]);
    let key = *e.view().pools.keys().next().unwrap();
    let pool = |e: &Engine| e.view().pools[&key].clone();
    assert!(!pool(&e).sorry_active);
    // 3: not below 4 - 1, quorum kept.
    let acts = probe(&mut e, CheckerId(2), 1, false);
    assert_eq!(notifies(&acts), ["/bin/down 3"]);
    assert!(!pool(&e).sorry_active);
    // 1 < 3: lost; the sorry server goes in.
    let acts = probe(&mut e, CheckerId(1), 2, false);
    assert_eq!(notifies(&acts), ["/bin/down 2", "/bin/qdown"]);
    assert!(pool(&e).sorry_active);
    assert!(events(&acts).contains(&HealthEvent::Pool {
        service: key,
        sorry_active: true,
        quorum_up: false,
    }));
    // 3 < 4 + 1: not regained yet.
    let acts = probe(&mut e, CheckerId(1), 12, true);
    assert_eq!(notifies(&acts), ["/bin/up 2"]);
    assert!(pool(&e).sorry_active);
    // 6 >= 5: regained, the sorry server goes out.
    let acts = probe(&mut e, CheckerId(2), 13, true);
    assert_eq!(notifies(&acts), ["/bin/up 3", "/bin/qup vs 1"]);
    assert!(!pool(&e).sorry_active);
    assert!(events(&acts).contains(&HealthEvent::Pool {
        service: key,
        sorry_active: false,
        quorum_up: true,
    }));
}

#[test]
fn quorum_is_lost_when_no_weight_is_left() {
    let vs = format!(
        "{HEAD}quorum_down = \"/bin/qdown\"\nsorry_server = \"198.18.0.99:80\"\n{}",
        rs(1, 1, TCP)
    );
    let (mut e, start) = engine(&vs);
    assert!(notifies(&start).is_empty());
    let acts = probe(&mut e, CheckerId(0), 1, false);
    assert_eq!(notifies(&acts), ["/bin/down 1", "/bin/qdown"]);
    assert!(e.view().pools.values().next().unwrap().sorry_active);
}

#[test]
fn starting_below_quorum_puts_the_sorry_server_in_at_once() {
    let with = format!(
        "{HEAD}quorum = 5\nsorry_server = \"198.18.0.99:80\"\nquorum_down = \"/bin/qdown\"\n{}",
        rs(1, 1, TCP)
    );
    let (e, start) = engine(&with);
    assert_eq!(notifies(&start), ["/bin/qdown"]);
    assert!(e.view().pools.values().next().unwrap().sorry_active);
    // Without a sorry server keepalived says nothing at start-up.
    let without = format!(
        "{HEAD}quorum = 5\nquorum_down = \"/bin/qdown\"\n{}",
        rs(1, 1, TCP)
    );
    let (e, start) = engine(&without);
    assert!(notifies(&start).is_empty());
    assert!(!e.view().pools.values().next().unwrap().sorry_active);
}

#[test]
fn misc_dynamic_sets_the_weight_from_the_exit_status() {
    let misc = "[virtual_server.real_server.misc_check]\nmisc_path = \"/bin/check\"\nmisc_dynamic = true\n";
    let vs = format!(
        "{HEAD}quorum = 3\nquorum_down = \"/bin/qdown\"\nquorum_up = \"/bin/qup\"\n{}",
        rs(1, 4, misc)
    );
    let (mut e, start) = engine(&vs);
    assert_eq!(notifies(&start), ["/bin/qup"]);
    let id = CheckerId(0);
    let weight = |e: &Engine| e.view().pools.values().next().unwrap().servers[&sa(1)].weight;
    e.begin(id);
    let acts = e.on_result(id, secs(1), ProbeOutcome::Exited(4));
    assert_eq!(weight(&e), Some(2), "status - 2");
    assert_eq!(notifies(&acts), ["/bin/qdown"], "2 < quorum 3");
    // The weight, and the quorum lost (no sorry server to put in).
    assert_eq!(events(&acts).len(), 2);
    assert!(matches!(
        events(&acts)[1],
        HealthEvent::Pool {
            quorum_up: false,
            sorry_active: false,
            ..
        }
    ));
    e.begin(id);
    let acts = e.on_result(id, secs(11), ProbeOutcome::Exited(0));
    assert_eq!(weight(&e), None, "exit 0: the configured weight");
    assert_eq!(notifies(&acts), ["/bin/qup"]);
    e.begin(id);
    e.on_result(id, secs(21), ProbeOutcome::Exited(255));
    assert_eq!(weight(&e), Some(253));
    e.begin(id);
    let acts = e.on_result(id, secs(31), ProbeOutcome::Exited(1));
    assert!(!alive(&e, 1), "exit 1 fails");
    assert_eq!(weight(&e), None, "a failure forgets the dynamic weight");
    assert_eq!(notifies(&acts), ["/bin/down 1", "/bin/qdown"]);
    // Up again at weight 0 (status 2): alive, but no quorum weight.
    e.begin(id);
    let acts = e.on_result(id, secs(41), ProbeOutcome::Exited(2));
    assert!(alive(&e, 1));
    assert_eq!(weight(&e), Some(0));
    assert_eq!(notifies(&acts), ["/bin/up 1"]);
}

#[test]
fn misc_without_dynamic_fails_on_any_nonzero_status() {
    let misc = "[virtual_server.real_server.misc_check]\nmisc_path = \"/bin/check\"\n";
    let (mut e, _) = engine(&format!("{HEAD}{}", rs(1, 4, misc)));
    e.begin(CheckerId(0));
    e.on_result(CheckerId(0), secs(1), ProbeOutcome::Exited(2));
    assert!(!alive(&e, 1));
    e.begin(CheckerId(0));
    e.on_result(CheckerId(0), secs(11), ProbeOutcome::Exited(0));
    assert!(alive(&e, 1));
    assert_eq!(
        e.view().pools.values().next().unwrap().servers[&sa(1)].weight,
        None
    );
}

#[test]
fn misc_probe_spec_uses_delay_loop_as_default_timeout() {
    let misc =
        "[virtual_server.real_server.misc_check]\nmisc_path = \"/bin/check 'a b' c\\\\ d\"\n";
    let (mut e, _) = engine(&format!("{HEAD}{}", rs(1, 1, misc)));
    assert_eq!(
        *e.begin(CheckerId(0)).unwrap(),
        ProbeSpec::Misc {
            argv: vec!["/bin/check".into(), "a b".into(), "c d".into()],
            timeout: Duration::from_secs(10),
            user: None,
        }
    );
    // A line that cannot be split never reaches the engine: `check`
    // refuses it with its position (config::tests).
}

/// MISC_CHECK `user USER [GROUP]` reaches the probe, for the runner to run
/// the script as that account rather than the global script user.
#[test]
fn misc_probe_spec_carries_the_checkers_user() {
    let misc = "[virtual_server.real_server.misc_check]\nmisc_path = \"/bin/check\"\n\
                user = \"nobody\"\ngroup = \"0\"\n";
    let (mut e, _) = engine(&format!("{HEAD}{}", rs(1, 1, misc)));
    match &*e.begin(CheckerId(0)).unwrap() {
        ProbeSpec::Misc { user, .. } => {
            assert_eq!(user, &Some(("nobody".to_string(), Some("0".to_string()))))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn alpha_mode_servers_join_at_their_first_success() {
    let vs = format!(
        "{HEAD}alpha = true\nquorum_up = \"/bin/qup\"\n{}{}",
        rs(1, 1, TCP),
        rs(2, 1, TCP)
    );
    let (mut e, start) = engine(&vs);
    assert!(notifies(&start).is_empty(), "nothing alive: no quorum yet");
    assert!(!alive(&e, 1) && !alive(&e, 2));
    let acts = probe(&mut e, CheckerId(0), 1, true);
    assert_eq!(notifies(&acts), ["/bin/up 1", "/bin/qup"]);
    // A first failure confirms the down state: notify_down, once.
    let acts = probe(&mut e, CheckerId(1), 1, false);
    assert_eq!(notifies(&acts), ["/bin/down 2"]);
    assert!(events(&acts).is_empty());
    assert!(probe(&mut e, CheckerId(1), 11, false).is_empty());
}

#[test]
fn http_get_waits_the_longer_delay_while_down() {
    let http = "[virtual_server.real_server.http_get]\nurl = [{ path = \"/h\", status_code = \"200-204\" }]\n\
                delay_before_retry = 25\nretry = 0\nvirtualhost = \"w\"\n";
    let (mut e, _) = engine(&format!("{HEAD}{}", rs(1, 1, http)));
    let spec = e.begin(CheckerId(0)).unwrap();
    match &*spec {
        ProbeSpec::Http {
            urls, virtualhost, ..
        } => {
            assert_eq!(urls[0].status_code, vec![200..=204]);
            assert_eq!(virtualhost.as_deref(), Some("w"));
        }
        other => panic!("{other:?}"),
    }
    e.on_result(CheckerId(0), secs(1), ProbeOutcome::Failure);
    assert_eq!(e.checker(CheckerId(0)).unwrap().next_due(), secs(26));
}

#[test]
fn reload_keeps_the_state_of_what_stays() {
    let v1 = format!(
        "{HEAD}quorum_down = \"/bin/qdown\"\n{}{}{}",
        rs(1, 1, TCP),
        rs(2, 1, TCP),
        rs(3, 1, TCP)
    );
    let (mut e, _) = engine(&v1);
    probe(&mut e, CheckerId(0), 1, false);
    assert!(!alive(&e, 1));
    let due2 = e.checker(CheckerId(1)).unwrap().next_due();
    // rs1 same checker (stays down), rs2 unchanged, rs3 removed (alive:
    // notify_down), rs4 new (up).
    let v2 = format!(
        "{HEAD}quorum_down = \"/bin/qdown\"\n{}{}{}",
        rs(1, 1, TCP),
        rs(2, 1, TCP),
        rs(4, 1, TCP)
    );
    let acts = e.reload(&vss(&v2), secs(5));
    assert_eq!(notifies(&acts), ["/bin/down 3"]);
    assert!(!alive(&e, 1), "down stays down across a reload");
    assert!(alive(&e, 2) && alive(&e, 4));
    assert_eq!(
        e.checker(CheckerId(1)).unwrap().next_due(),
        due2,
        "timers kept"
    );
    // rs1's checker changed: a fresh checker, but the server is known down
    // so it comes back only with a success.
    let v3 = format!(
        "{HEAD}quorum_down = \"/bin/qdown\"\n{}{}",
        rs(1, 1, "[virtual_server.real_server.tcp_check]\nretry = 2\n"),
        rs(2, 1, TCP)
    );
    let acts = e.reload(&vss(&v3), secs(6));
    assert!(
        alive(&e, 1),
        "a changed checker starts up: the server rejoins"
    );
    assert_eq!(notifies(&acts), ["/bin/up 1", "/bin/down 4"]);
    // Another delay_loop is not another check: rs1 (down again) stays down.
    probe(&mut e, CheckerId(0), 8, false);
    assert!(!alive(&e, 1));
    let v4 = v3.replace("delay_loop = 10", "delay_loop = 5");
    let acts = e.reload(&vss(&v4), secs(9));
    assert!(acts.is_empty(), "{acts:?}");
    assert!(!alive(&e, 1));
    assert_eq!(e.checker(CheckerId(0)).unwrap().next_due(), secs(14));
    // A removed virtual server: its alive servers and its quorum go down.
    let acts = e.reload(&[], secs(10));
    assert_eq!(
        notifies(&acts),
        ["/bin/down 2", "/bin/qdown"],
        "rs1 is down"
    );
    assert!(e.view().pools.is_empty());
}

#[test]
fn reload_keeps_the_sorry_server_only_if_it_is_the_same() {
    let mk = |sorry: &str| format!("{HEAD}sorry_server = \"{sorry}\"\n{}", rs(1, 1, TCP));
    let (mut e, _) = engine(&mk("198.18.0.99:80"));
    probe(&mut e, CheckerId(0), 1, false);
    let active = |e: &Engine| e.view().pools.values().next().unwrap().sorry_active;
    assert!(active(&e));
    e.reload(&vss(&mk("198.18.0.99:80")), secs(2));
    assert!(active(&e));
    // Another sorry server: quorum is still down, the new one goes in.
    e.reload(&vss(&mk("198.18.0.98:80")), secs(3));
    assert!(active(&e));
    assert_eq!(
        e.view().pools.values().next().unwrap().sorry_server,
        Some("198.18.0.98:80".parse().unwrap())
    );
}

// ------------------------------------------------------ effective services

fn configured(text: &str) -> Vec<crate::service::ServiceSpec> {
    config::parse_str(text, "lb.toml").unwrap().service_specs()
}

fn weights(specs: &[crate::service::ServiceSpec]) -> Vec<(u8, i32)> {
    specs[0]
        .dests
        .iter()
        .map(|d| match d.addr {
            std::net::IpAddr::V4(a) => (a.octets()[3], d.weight),
            std::net::IpAddr::V6(_) => (0, d.weight),
        })
        .collect()
}

#[test]
fn down_servers_leave_the_service_or_keep_weight_zero_when_inhibited() {
    let text = format!(
        "{HEAD}{}{}{}",
        rs(1, 5, TCP),
        rs(2, 7, &format!("inhibit_on_failure = true\n{TCP}")),
        rs(3, 9, "")
    );
    let (mut e, _) = engine(&text);
    let conf = configured(&text);
    assert_eq!(
        effective_services(&conf, &e.view()),
        conf,
        "all up: the configuration as is"
    );
    probe(&mut e, CheckerId(0), 1, false);
    probe(&mut e, CheckerId(1), 1, false);
    assert_eq!(
        weights(&effective_services(&conf, &e.view())),
        [(2, 0), (3, 9)]
    );
}

#[test]
fn unknown_servers_and_services_pass_through_and_edits_are_kept() {
    let text = format!("{HEAD}{}", rs(1, 5, TCP));
    let (e, _) = engine(&text);
    let mut conf = configured(&text);
    // lvsadm -e -w 3 on the checked server, lvsadm -a of another one, and a
    // service lb.toml does not have.
    conf[0].dests[0].weight = 3;
    let mut extra = conf[0].dests[0].clone();
    extra.addr = "198.18.0.77".parse().unwrap();
    conf[0].dests.push(extra);
    let mut other = conf[0].clone();
    other.key.port = 81;
    conf.push(other.clone());
    let out = effective_services(&conf, &e.view());
    assert_eq!(weights(&out), [(1, 3), (77, 3)]);
    assert_eq!(out[1], other);
}

#[test]
fn misc_dynamic_weight_reaches_the_service() {
    let misc = "[virtual_server.real_server.misc_check]\nmisc_path = \"/bin/check\"\nmisc_dynamic = true\n";
    let text = format!("{HEAD}{}", rs(1, 5, misc));
    let (mut e, _) = engine(&text);
    e.begin(CheckerId(0));
    e.on_result(CheckerId(0), secs(1), ProbeOutcome::Exited(42));
    assert_eq!(
        weights(&effective_services(&configured(&text), &e.view())),
        [(1, 40)]
    );
}

#[test]
fn the_sorry_server_replaces_every_real_server() {
    let text = format!(
        "{HEAD}quorum = 2\nsorry_server = \"198.18.0.99:80\"\n{}{}",
        rs(1, 1, TCP),
        rs(2, 1, &format!("inhibit_on_failure = true\n{TCP}"))
    );
    let (mut e, _) = engine(&text);
    let conf = configured(&text);
    probe(&mut e, CheckerId(0), 1, false);
    let out = effective_services(&conf, &e.view());
    // rs2 is alive but out of the pool (inhibited: weight 0), rs1 removed.
    assert_eq!(weights(&out), [(2, 0), (99, 1)]);
    let sorry = out[0].dests.last().unwrap();
    assert_eq!(
        sorry.fwd,
        crate::service::FwdMethod::Route,
        "the VS's lb_kind"
    );
    assert_eq!(sorry.port, 80);
    // The next hops to learn ahead include the sorry server.
    let all = with_sorry_servers(&conf, &e.view());
    assert_eq!(weights(&all), [(1, 1), (2, 1), (99, 1)]);
    probe(&mut e, CheckerId(0), 11, true);
    assert_eq!(
        effective_services(&conf, &e.view()),
        conf,
        "quorum regained: the configuration as is"
    );
}

#[test]
fn a_sorry_server_that_is_also_a_real_server_is_not_duplicated() {
    let text = format!(
        "{HEAD}quorum = 3\nsorry_server = \"198.18.0.2:80\"\n{}{}",
        rs(1, 1, TCP),
        rs(2, 1, "inhibit_on_failure = true\n")
    );
    let (e, _) = engine(&text);
    let out = effective_services(&configured(&text), &e.view());
    assert_eq!(weights(&out), [(2, 1)]);
    assert_eq!(
        with_sorry_servers(&configured(&text), &e.view())[0]
            .dests
            .len(),
        2
    );
}

#[test]
fn the_view_follows_events() {
    let text = format!("{HEAD}sorry_server = \"198.18.0.99:80\"\n{}", rs(1, 1, TCP));
    let (mut e, _) = engine(&text);
    let mut mirror = e.view();
    let acts = probe(&mut e, CheckerId(0), 1, false);
    for ev in events(&acts) {
        mirror.apply(&ev);
    }
    assert_eq!(mirror, e.view());
    let acts = probe(&mut e, CheckerId(0), 11, true);
    for ev in events(&acts) {
        mirror.apply(&ev);
    }
    assert_eq!(mirror, e.view());
    let mut fresh = HealthView::default();
    fresh.apply(&HealthEvent::Reset(e.view()));
    assert_eq!(fresh, e.view());
    // Events for unknown services are ignored.
    fresh.apply(&HealthEvent::Pool {
        service: crate::service::ServiceKey {
            proto: crate::service::Protocol::Udp,
            addr: "198.18.0.1".parse().unwrap(),
            port: 1,
            fwmark: 0,
        },
        sorry_active: true,
        quorum_up: false,
    });
    assert_eq!(fresh, e.view());
}

// ------------------------------------------------------------------- http

fn url(codes: Vec<std::ops::RangeInclusive<u16>>, digest: Option<[u8; 16]>) -> UrlCheck {
    UrlCheck {
        path: "/".into(),
        status_code: codes,
        digest,
        virtualhost: None,
        regex: None,
        regex_no_match: false,
    }
}

/// MD5("ok\n"), as `md5sum` prints it.
const OK_MD5: &str = "eff5bc1ef8ec9d03e640fc4370f5eacd";

fn hex16(s: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn judge(chunks: &[&[u8]], u: &UrlCheck) -> Result<(), HttpFailure> {
    let mut r = ResponseReader::for_url(u);
    for c in chunks {
        r.feed(c);
    }
    r.finish(u)
}

#[test]
fn request_is_keepalived_s_template() {
    let v4: SocketAddr = "198.18.0.11:8080".parse().unwrap();
    assert_eq!(
        http::request("/h", v4, None, HttpProtocol::V10),
        b"GET /h HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 198.18.0.11:8080\r\n\r\n"
    );
    let v6: SocketAddr = "[2001:2::11]:80".parse().unwrap();
    assert_eq!(
        http::request("/", v6, None, HttpProtocol::V10),
        b"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: [2001:2::11]:80\r\n\r\n"
    );
    assert_eq!(
        http::request("/", v6, Some("www.example"), HttpProtocol::V10),
        b"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: www.example\r\n\r\n"
    );
}

#[test]
fn status_codes_default_to_2xx_and_take_ranges() {
    assert!(http::status_accepted(204, &[]));
    assert!(!http::status_accepted(301, &[]));
    assert!(!http::status_accepted(199, &[]));
    let set = [200..=200, 301..=302];
    assert!(http::status_accepted(302, &set));
    assert!(!http::status_accepted(204, &set));
}

#[test]
fn responses_are_judged_on_status_then_digest() {
    let resp: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
    let d = Some(hex16(OK_MD5));
    assert_eq!(judge(&[resp], &url(vec![], d)), Ok(()));
    // Split anywhere, even inside the header terminator.
    for cut in 1..resp.len() {
        let (a, b) = resp.split_at(cut);
        assert_eq!(judge(&[a, b], &url(vec![], d)), Ok(()), "cut at {cut}");
    }
    let mut wrong = hex16(OK_MD5);
    wrong[0] ^= 1;
    assert_eq!(
        judge(&[resp], &url(vec![], Some(wrong))),
        Err(HttpFailure::Digest)
    );
    assert_eq!(
        judge(&[b"HTTP/1.1 404 Not Found\r\n\r\nok\n"], &url(vec![], d)),
        Err(HttpFailure::Status(404)),
        "the status is checked first"
    );
    assert_eq!(
        judge(
            &[b"HTTP/1.1 404 Not Found\r\n\r\n"],
            &url(vec![404..=404], None)
        ),
        Ok(())
    );
    assert_eq!(judge(&[], &url(vec![], None)), Err(HttpFailure::Empty));
    assert_eq!(
        judge(&[b"HTTP/1.0 200 OK\r\n"], &url(vec![], None)),
        Err(HttpFailure::BadHeaders)
    );
    assert_eq!(
        judge(&[b"SSH-2.0-OpenSSH\r\n\r\n"], &url(vec![], None)),
        Err(HttpFailure::BadStatusLine)
    );
    assert_eq!(
        judge(&[b"HTTP/1.0 2000 OK\r\n\r\n"], &url(vec![], None)),
        Err(HttpFailure::BadStatusLine)
    );
    let huge = vec![b'x'; http::MAX_HEADER_BYTES + 10];
    assert_eq!(
        judge(
            &[b"HTTP/1.0 200 OK\r\nX: ", &huge, b"\r\n\r\n"],
            &url(vec![], None)
        ),
        Err(HttpFailure::BadHeaders)
    );
}

// ------------------------------------------------------------------- argv

#[test]
fn command_lines_split_like_keepalived_without_a_shell() {
    use crate::config::argv::{ArgvError, split};
    assert_eq!(split("/bin/x  a\tb").unwrap(), ["/bin/x", "a", "b"]);
    assert_eq!(
        split("/bin/x 'a b' \"c \\\"d\\\"\" e\\ f").unwrap(),
        ["/bin/x", "a b", "c \"d\"", "e f"]
    );
    assert_eq!(split("/bin/x '' \"\\n\"").unwrap(), ["/bin/x", "", "\\n"]);
    assert_eq!(
        split("/bin/x $(reboot) ;|&").unwrap(),
        ["/bin/x", "$(reboot)", ";|&"]
    );
    assert_eq!(split("  "), Err(ArgvError::Empty));
    assert_eq!(split("/bin/x 'a"), Err(ArgvError::UnclosedQuote));
    assert_eq!(split("/bin/x \"a\\"), Err(ArgvError::UnclosedQuote));
    assert_eq!(split("/bin/x \\"), Err(ArgvError::TrailingBackslash));
}

// ------------------------------------------------------------------ probes

#[test]
fn misc_probe_reports_the_exit_status() {
    let run = |argv: &[&str], t: u64| {
        probe::run(&ProbeSpec::Misc {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_millis(t),
            user: None,
        })
    };
    assert_eq!(
        run(&["/bin/sh", "-c", "exit 0"], 5000),
        ProbeOutcome::Exited(0)
    );
    assert_eq!(
        run(&["/bin/sh", "-c", "exit 7"], 5000),
        ProbeOutcome::Exited(7)
    );
    assert_eq!(
        run(&["/bin/sh", "-c", "kill -9 $$"], 5000),
        ProbeOutcome::Failure
    );
    assert_eq!(run(&["/nonexistent/check"], 5000), ProbeOutcome::Failure);
}

#[test]
fn misc_probe_kills_the_script_group_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("survivor");
    // The script leaves a child behind that would write the mark later.
    let script = format!("(sleep 1; touch {}) & sleep 30", mark.display());
    let t0 = std::time::Instant::now();
    let out = probe::run(&ProbeSpec::Misc {
        argv: vec!["/bin/sh".into(), "-c".into(), script],
        timeout: Duration::from_millis(200),
        user: None,
    });
    assert_eq!(out, ProbeOutcome::Failure);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    std::thread::sleep(Duration::from_millis(1300));
    assert!(!mark.exists(), "the script's own children were killed too");
}

/// MISC_CHECK runs as the script user (the tests run as root): the script
/// sees uid 65534, and the same script as root sees 0.
#[test]
fn misc_probe_runs_as_the_script_user() {
    let spec = ProbeSpec::Misc {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "test \"$(id -u):$(id -g)\" = 65534:65534".into(),
        ],
        timeout: Duration::from_secs(5),
        user: None,
    };
    let nobody = crate::control::script::RunAs {
        uid: 65534,
        gid: 65534,
    };
    assert_eq!(probe::run_as(&spec, Some(nobody)), ProbeOutcome::Exited(0));
    assert_eq!(probe::run(&spec), ProbeOutcome::Exited(1));
}

// ------------------------------------------------- issue 14: new probes

#[test]
fn http_1_1_and_1_0c_send_connection_close() {
    let v4: SocketAddr = "198.18.0.11:80".parse().unwrap();
    assert_eq!(
        http::request("/h", v4, Some("a.example"), HttpProtocol::V11),
        b"GET /h HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: a.example\r\n\r\n"
    );
    assert_eq!(
        http::request("/h", v4, None, HttpProtocol::V10Close),
        b"GET /h HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: 198.18.0.11:80\r\n\r\n"
    );
}

fn regex_url(re: &str, no_match: bool) -> UrlCheck {
    UrlCheck {
        regex: Some(http::Pattern(regex::bytes::Regex::new(re).unwrap())),
        regex_no_match: no_match,
        ..url(vec![], None)
    }
}

#[test]
fn regex_is_matched_against_the_body_only() {
    let resp: &[&[u8]] = &[b"HTTP/1.1 200 OK\r\nX-State: up\r\n\r\nstate=", b"up\n"];
    assert_eq!(judge(resp, &regex_url("state=up", false)), Ok(()));
    assert_eq!(
        judge(resp, &regex_url("state=down", false)),
        Err(HttpFailure::Regex)
    );
    assert_eq!(judge(resp, &regex_url("state=down", true)), Ok(()));
    assert_eq!(
        judge(resp, &regex_url("state=up", true)),
        Err(HttpFailure::Regex)
    );
    // The headers are not the body.
    assert_eq!(
        judge(resp, &regex_url("X-State", false)),
        Err(HttpFailure::Regex)
    );
    // The status is judged first.
    let bad: &[&[u8]] = &[b"HTTP/1.1 503 Busy\r\n\r\nstate=up\n"];
    assert_eq!(
        judge(bad, &regex_url("state=up", false)),
        Err(HttpFailure::Status(503))
    );
}

#[test]
fn regex_sees_at_most_the_body_s_first_mebibyte() {
    let mut r = ResponseReader::for_url(&regex_url("needle", false));
    r.feed(b"HTTP/1.0 200 OK\r\n\r\n");
    r.feed(&vec![b'.'; http::MAX_REGEX_BODY]);
    r.feed(b"needle");
    assert_eq!(
        r.finish(&regex_url("needle", false)),
        Err(HttpFailure::Regex)
    );
}

fn udp_spec(reply: Option<(Vec<u8>, Vec<u8>)>, min: usize, max: usize) -> config::UdpCheck {
    config::UdpCheck {
        connect: config::Connect {
            connect_ip: "198.18.0.11".parse().unwrap(),
            connect_port: 53,
            bindto: None,
            bind_port: None,
            bind_if: None,
            fwmark: None,
            connect_timeout: Duration::from_secs(1),
        },
        payload: None,
        require_reply: true,
        reply,
        min_reply_length: min,
        max_reply_length: max,
    }
}

#[test]
fn udp_replies_are_judged_on_length_then_pattern() {
    let any = udp_spec(None, 0, 255);
    assert!(probe::udp_reply_ok(&any, b""));
    let sized = udp_spec(None, 2, 4);
    assert!(!probe::udp_reply_ok(&sized, b"a"));
    assert!(probe::udp_reply_ok(&sized, b"ab"));
    assert!(!probe::udp_reply_ok(&sized, b"abcde"));
    // "ok" with the low nibble of 'o' a wildcard.
    let pat = udp_spec(Some((vec![0x60, b'k'], vec![0x0f, 0])), 0, 255);
    assert!(probe::udp_reply_ok(&pat, b"ok rs1"));
    assert!(probe::udp_reply_ok(&pat, b"ck"));
    assert!(!probe::udp_reply_ok(&pat, b"oK"));
    assert!(!probe::udp_reply_ok(&pat, b"pk"), "0x70 is not 0x6_");
    // Only the lesser of both lengths is compared (keepalived).
    assert!(probe::udp_reply_ok(&pat, b"o"));
    assert_eq!(probe::udp_default_payload().len(), 32);
    assert!(probe::udp_default_payload().starts_with(b"keepalived check - keepalived"));
}

#[test]
fn smtp_status_is_three_digits_then_a_space_or_the_end() {
    assert_eq!(probe::smtp_status("220 mail.example ESMTP\r\n"), Some(220));
    assert_eq!(probe::smtp_status("250\r\n"), Some(250));
    assert_eq!(probe::smtp_status("220-multi line\r\n"), None);
    assert_eq!(probe::smtp_status("2200 x\r\n"), None);
    assert_eq!(probe::smtp_status("ok\r\n"), None);
    assert_eq!(probe::smtp_status(""), None);
}

#[test]
fn echo_requests_and_replies() {
    let req = probe::echo_request(false, 0x1234, 7, true);
    assert_eq!(&req[..8], &[8, 0, req[2], req[3], 0x12, 0x34, 0, 7]);
    assert!(crate::wire::checksum::verify(&req), "IPv4 checksum filled");
    let v6 = probe::echo_request(true, 1, 2, true);
    assert_eq!(&v6[..4], &[128, 0, 0, 0], "ICMPv6: the kernel sums");
    let mut reply = req.clone();
    reply[0] = 0;
    assert!(probe::is_echo_reply(false, &reply, Some(0x1234), 7));
    assert!(
        probe::is_echo_reply(false, &reply, None, 7),
        "ping socket: any id"
    );
    assert!(!probe::is_echo_reply(false, &reply, Some(0x1235), 7));
    assert!(!probe::is_echo_reply(false, &reply, Some(0x1234), 8));
    assert!(
        !probe::is_echo_reply(false, &req, Some(0x1234), 7),
        "a request"
    );
    assert!(!probe::is_echo_reply(true, &reply, Some(0x1234), 7));
    assert!(!probe::is_echo_reply(false, &reply[..7], None, 7));
}

#[test]
fn checkers_carry_their_inherited_timers_into_the_engine() {
    let vs = format!(
        "{HEAD}retry = 2\ndelay_before_retry = 4\nwarmup = 0\n{}",
        rs(
            1,
            1,
            "[virtual_server.real_server.dns_check]\nname = \"rig.test\"\ntype = \"A\"\n"
        )
    );
    let (mut e, _) = engine(&vs);
    // warmup 0: due at once.
    assert_eq!(e.due(secs(0)), [CheckerId(0)]);
    match &*e.begin(CheckerId(0)).unwrap() {
        ProbeSpec::Dns { qtype, name, .. } => assert_eq!((*qtype, name.as_str()), (1, "rig.test")),
        other => panic!("{other:?}"),
    }
    e.on_result(CheckerId(0), secs(1), ProbeOutcome::Success);
    e.begin(CheckerId(0));
    e.on_result(CheckerId(0), secs(11), ProbeOutcome::Failure);
    assert_eq!(
        e.checker(CheckerId(0)).unwrap().next_due(),
        secs(15),
        "delay_before_retry 4"
    );
    let p = e.checker(CheckerId(0)).unwrap().params();
    assert_eq!((p.retry, p.warmup), (2, Duration::ZERO));
}

#[test]
fn sorry_server_inhibit_and_lvs_method() {
    let text = format!(
        "{HEAD}sorry_server = \"198.18.0.99:80\"\nsorry_server_inhibit = true\n\
         sorry_server_lvs_method = \"NAT\"\n{}",
        rs(1, 5, TCP)
    );
    let (mut e, _) = engine(&text);
    let conf = configured(&text);
    // Not needed: listed with weight 0, with its own method.
    let out = effective_services(&conf, &e.view());
    assert_eq!(weights(&out), [(1, 5), (99, 0)]);
    assert_eq!(out[0].dests[1].fwd, crate::service::FwdMethod::Masq);
    assert_eq!(out[0].dests[0].fwd, crate::service::FwdMethod::Route);
    // Quorum lost: weight 1.
    probe(&mut e, CheckerId(0), 1, false);
    assert_eq!(weights(&effective_services(&conf, &e.view())), [(99, 1)]);
    // Without sorry_server_inhibit it is absent while not needed.
    let plain = text.replace("sorry_server_inhibit = true\n", "");
    let (e, _) = engine(&plain);
    assert_eq!(
        weights(&effective_services(&configured(&plain), &e.view())),
        [(1, 5)]
    );
}

#[test]
fn omega_runs_the_down_notifies_at_shutdown() {
    let text = format!(
        "{HEAD}omega = true\nquorum_down = \"/bin/qdown\"\n{}{}",
        rs(1, 1, TCP),
        rs(2, 1, TCP)
    );
    let (mut e, _) = engine(&text);
    probe(&mut e, CheckerId(1), 1, false);
    // rs2 is already down: only rs1's notify_down, then quorum_down.
    assert_eq!(notifies(&e.shutdown()), ["/bin/down 1", "/bin/qdown"]);
    // Without omega keepalived stays silent at shutdown.
    let (mut e, _) = engine(&text.replace("omega = true\n", ""));
    assert!(e.shutdown().is_empty());
}

#[test]
fn ha_suspend_stops_the_probes_while_the_address_is_missing() {
    let text = format!("{HEAD}ha_suspend = true\n{}", rs(1, 1, TCP));
    let (mut e, _) = engine(&text);
    let vip: std::net::IpAddr = "198.18.0.250".parse().unwrap();
    assert_eq!(e.suspend_addresses(), [vip]);
    let first = e.checker(CheckerId(0)).unwrap().next_due();
    e.set_address_present(vip, false);
    assert!(e.due(secs(10)).is_empty(), "suspended");
    // Moved on by delay_loop without a probe; the verdict is kept.
    assert_eq!(e.checker(CheckerId(0)).unwrap().next_due(), secs(20));
    assert!(first <= secs(10));
    assert!(alive(&e, 1));
    e.set_address_present(vip, true);
    assert_eq!(e.due(secs(20)), [CheckerId(0)]);
    // Without ha_suspend nothing is watched.
    let (e, _) = engine(&format!("{HEAD}{}", rs(1, 1, TCP)));
    assert!(e.suspend_addresses().is_empty());
}

#[test]
fn bind_port_and_bind_if_shape_the_probe_s_socket() {
    // Real kernel sockets on loopback.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = l.local_addr().unwrap();
    let conn = |bind_port: Option<u16>, bind_if: Option<&str>| engine::Conn {
        dst,
        bind: None,
        bind_port,
        bind_if: bind_if.map(str::to_string),
        fwmark: None,
        timeout: Duration::from_secs(1),
    };
    // A free source port, then that port seen by the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = probe::connect(&conn(Some(port), Some("lo"))).expect("bound to lo");
    let (_peer, from) = l.accept().unwrap();
    assert_eq!(from.port(), port, "bind_port");
    drop(s);
    // A device that does not exist: the probe fails, as keepalived's.
    assert!(probe::connect(&conn(None, Some("lfnope0"))).is_err());
    assert_eq!(
        probe::run(&ProbeSpec::Tcp(conn(None, Some("lfnope0")))),
        ProbeOutcome::Failure
    );
}

#[test]
fn regex_inline_flags_change_the_match() {
    let resp: &[&[u8]] = &[b"HTTP/1.0 200 OK\r\n\r\nState=UP\n"];
    assert_eq!(
        judge(resp, &regex_url("state=up", false)),
        Err(HttpFailure::Regex)
    );
    assert_eq!(judge(resp, &regex_url("(?i)state=up", false)), Ok(()));
}
