use super::*;

fn run(h: &mut ScriptHealth, results: &[bool]) -> Vec<Option<Status>> {
    results.iter().map(|&ok| h.record(ok)).collect()
}

#[test]
fn first_result_decides_then_fall_and_rise_count() {
    // keepalived starts at rise - 1: one success is enough, one failure
    // too, whatever rise and fall are.
    let mut h = ScriptHealth::new(3, 2);
    assert_eq!(h.status(), Status::Pending);
    assert_eq!(h.record(true), Some(Status::Up));
    let mut h = ScriptHealth::new(3, 2);
    assert_eq!(h.record(false), Some(Status::Down));

    // OK, fall 2: one failure is tolerated, the second fails it.
    let mut h = ScriptHealth::new(3, 2);
    h.record(true);
    assert_eq!(run(&mut h, &[false]), vec![None]);
    assert_eq!(h.status(), Status::Up);
    // A success in between starts the count again.
    assert_eq!(run(&mut h, &[true, false]), vec![None, None]);
    assert_eq!(h.record(false), Some(Status::Down));
    // Failed, rise 3: three successes in a row, a failure resets.
    assert_eq!(run(&mut h, &[true, true, false]), vec![None, None, None]);
    assert_eq!(h.status(), Status::Down);
    assert_eq!(
        run(&mut h, &[true, true, true]),
        vec![None, None, Some(Status::Up)]
    );
}

#[test]
fn fall_and_rise_of_one_follow_every_result() {
    let mut h = ScriptHealth::new(1, 1);
    assert_eq!(
        run(&mut h, &[true, true, false, false, true]),
        vec![
            Some(Status::Up),
            None,
            Some(Status::Down),
            None,
            Some(Status::Up)
        ]
    );
}

#[test]
fn weights_and_faults() {
    use Status::*;
    // Weight 0: down is FAULT, pending holds the start.
    let v = evaluate(100, [(0, Down)]);
    assert!(v.fault && !v.pending);
    assert_eq!(v.priority, 100);
    let v = evaluate(100, [(0, Pending), (0, Up)]);
    assert!(!v.fault && v.pending);
    // A positive weight counts while up, a negative one while down.
    assert_eq!(evaluate(100, [(10, Up), (-30, Up)]).priority, 110);
    assert_eq!(evaluate(100, [(10, Down), (-30, Down)]).priority, 70);
    assert_eq!(evaluate(100, [(10, Pending), (-30, Pending)]).priority, 100);
    // Within 1..=254.
    assert_eq!(evaluate(200, [(100, Up)]).priority, 254);
    assert_eq!(evaluate(20, [(-100, Down)]).priority, 1);
    // The address owner is never adjusted; a weight-0 fault still counts.
    assert_eq!(evaluate(255, [(-100, Down)]).priority, 255);
    assert!(evaluate(255, [(0, Down)]).fault);
}

fn m(state: State, own_fault: bool, wants_master: bool) -> Member {
    Member {
        state,
        own_fault,
        wants_master,
    }
}

#[test]
fn a_member_fault_faults_the_group_until_every_member_is_clear() {
    use GroupMove as G;
    use State as S;
    assert_eq!(
        group_moves(
            &[m(S::Master, false, false), m(S::Fault, true, false)],
            None
        ),
        vec![G::Fault, G::Stay]
    );
    assert_eq!(
        group_moves(
            &[m(S::Backup, false, false), m(S::Master, true, false)],
            None
        ),
        vec![G::Fault, G::Fault]
    );
    // Still one fault of its own: everyone stays in FAULT.
    assert_eq!(
        group_moves(&[m(S::Fault, true, false), m(S::Fault, false, false)], None),
        vec![G::Stay, G::Stay]
    );
    // All clear: all start over together.
    assert_eq!(
        group_moves(
            &[m(S::Fault, false, false), m(S::Fault, false, false)],
            None
        ),
        vec![G::Recover, G::Recover]
    );
}

#[test]
fn members_go_master_together_and_back_up_together() {
    use GroupMove as G;
    use State as S;
    // One wants to be master, the other still hears a master: wait
    // (keepalived prefers backup to thrashing).
    assert_eq!(
        group_moves(
            &[m(S::Backup, false, true), m(S::Backup, false, false)],
            None
        ),
        vec![G::Stay, G::Stay]
    );
    // Both want it: both go.
    assert_eq!(
        group_moves(
            &[m(S::Backup, false, true), m(S::Backup, false, true)],
            None
        ),
        vec![G::Master, G::Master]
    );
    // Nobody wants it: nothing.
    assert_eq!(
        group_moves(
            &[m(S::Backup, false, false), m(S::Backup, false, false)],
            None
        ),
        vec![G::Stay, G::Stay]
    );
    // One became master (e.g. the address owner, or a priority-0 advert):
    // the others follow.
    assert_eq!(
        group_moves(
            &[m(S::Master, false, false), m(S::Backup, false, false)],
            None
        ),
        vec![G::Stay, G::Master]
    );
    // One was demoted by a better router: the masters follow it down.
    assert_eq!(
        group_moves(
            &[m(S::Backup, false, false), m(S::Master, false, false)],
            Some(0)
        ),
        vec![G::Stay, G::Backup]
    );
}

#[test]
fn init_fail_starts_failed_and_needs_rise_successes() {
    // keepalived's vrrp_init_script: result 0 ("assume failed by config").
    let mut h = ScriptHealth::new_failed(2, 3);
    assert_eq!(h.status(), Status::Down);
    // A failure changes nothing; rise 2 successes make it OK.
    assert_eq!(
        run(&mut h, &[false, true, true]),
        vec![None, None, Some(Status::Up)]
    );
    // Weight 0: the instance is in FAULT before the first run, not held.
    let v = evaluate(100, [(0, ScriptHealth::new_failed(1, 1).status())]);
    assert!(v.fault && !v.pending);
    // A negative weight applies at once; without init_fail nothing does.
    assert_eq!(
        evaluate(100, [(-30, ScriptHealth::new_failed(1, 1).status())]).priority,
        70
    );
    assert_eq!(
        evaluate(100, [(-30, ScriptHealth::new(1, 1).status())]).priority,
        100
    );
}

#[test]
fn reverse_turns_each_weight_around() {
    use Status::*;
    // keepalived's table: +W reverse takes W off while up, -W reverse adds
    // |W| while down; nothing otherwise.
    let p = |w, s| evaluate_reversible(100, [(w, true, s)]).priority;
    assert_eq!((p(10, Up), p(10, Down), p(10, Pending)), (90, 100, 100));
    assert_eq!((p(-30, Up), p(-30, Down), p(-30, Pending)), (100, 130, 100));
    // Weight 0 reverse: FAULT while the script succeeds.
    let f = |s| evaluate_reversible(100, [(0, true, s)]);
    assert!(f(Up).fault && !f(Down).fault);
    assert!(f(Pending).pending && !f(Pending).fault);
    // Mixed with non-reversed objects, within 1..=254; owner untouched.
    assert_eq!(
        evaluate_reversible(100, [(20, false, Up), (-50, true, Down)]).priority,
        170
    );
    assert_eq!(evaluate_reversible(250, [(-50, true, Down)]).priority, 254);
    assert_eq!(evaluate_reversible(255, [(50, true, Up)]).priority, 255);
}
