//! VRRP tracking as keepalived does it (vrrp_track.c, vrrp_scheduler.c,
//! vrrp_sync.c), pure: what a `vrrp_script`'s results mean, what the
//! tracked scripts and interfaces make of an instance (FAULT, its
//! effective priority), and what a sync group decides. No process, clock
//! or netlink here; `control::vrrp_thread` runs the scripts and reads the
//! links.
//!
//! Rules:
//! - A script's results go through keepalived's counter `result` in
//!   `0..rise+fall`: OK while `result >= rise`. A success below `rise - 1`
//!   counts up; otherwise the counter jumps to its top (`rise + fall - 1`),
//!   and the script becomes OK if it was not. A failure above `rise`
//!   counts down; otherwise the counter drops to 0, and an OK script
//!   becomes failed. So an OK script fails after `fall` failures in a row
//!   and a failed one recovers after `rise` successes in a row. At start
//!   the counter is `rise - 1` ("one success is enough"), and the first
//!   result decides either way. A run that times out is a failure.
//! - `init_fail` (vrrp_script): the script starts failed, counter 0, as
//!   if it had reported a failure (keepalived's SCRIPT_INIT_STATE_FAILED):
//!   a weight-0 tracker holds its instance in FAULT from the start, a
//!   negative weight applies at once, and it needs `rise` successes.
//! - Weight 0 (script or interface): failed / link down is FAULT; a
//!   weight-0 script that has not reported yet holds the instance before
//!   it starts (keepalived's `num_script_init`).
//! - Weight W != 0: a positive W is added while the script is OK / the
//!   link is up, a negative W while it fails / the link is down; the
//!   effective priority is the configured one plus the sum, within
//!   1..=254. An address owner (priority 255) is never adjusted, as in
//!   keepalived. A script that has not reported yet adds nothing.
//! - `reverse` (keepalived's `weight W reverse`, its weight multiplier of
//!   -1): a positive W is taken off while the script is OK, a negative W
//!   is added (as |W|) while it fails; weight 0 reverse is FAULT while the
//!   script is OK, and usable while it fails.
//! - Sync groups: one member in FAULT puts every member in FAULT, and the
//!   group leaves FAULT only when no member has a fault of its own. A
//!   member that goes BACKUP takes the group's masters with it; a member
//!   whose master-down timer ran out goes MASTER (and takes the group
//!   with it) only when the group already has a master or every other
//!   member wants to be master too (keepalived's
//!   `vrrp_sync_can_goto_master`, which prefers BACKUP to thrashing).

use super::machine::State;

/// The OK / failed state of one `vrrp_script` (keepalived's counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptHealth {
    result: u32,
    rise: u32,
    fall: u32,
    reported: bool,
}

/// Whether a tracked object is usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// A script that has not reported yet.
    Pending,
    Up,
    Down,
}

impl ScriptHealth {
    /// A script with `rise` and `fall` (both at least 1), failed from the
    /// start (`init_fail`).
    pub fn new_failed(rise: u32, fall: u32) -> ScriptHealth {
        ScriptHealth {
            result: 0,
            reported: true,
            ..ScriptHealth::new(rise, fall)
        }
    }

    /// A script with `rise` and `fall` (both at least 1).
    pub fn new(rise: u32, fall: u32) -> ScriptHealth {
        let rise = rise.max(1);
        ScriptHealth {
            result: rise - 1,
            rise,
            fall: fall.max(1),
            reported: false,
        }
    }

    pub fn status(&self) -> Status {
        if !self.reported {
            Status::Pending
        } else if self.result >= self.rise {
            Status::Up
        } else {
            Status::Down
        }
    }

    /// Records one run (`ok`: exited 0). Returns the new status when it
    /// changes (the first result always does).
    pub fn record(&mut self, ok: bool) -> Option<Status> {
        let before = self.status();
        let top = self.rise + self.fall - 1;
        if ok {
            if self.result < self.rise - 1 {
                self.result += 1;
            } else {
                self.result = top;
            }
        } else if self.result > self.rise {
            self.result -= 1;
        } else {
            self.result = 0;
        }
        self.reported = true;
        let after = self.status();
        (after != before).then_some(after)
    }
}

/// What an instance's tracked objects make of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// A weight-0 object is down: the instance is in FAULT.
    pub fault: bool,
    /// A weight-0 script has not reported yet: the instance waits to start.
    pub pending: bool,
    /// The effective priority.
    pub priority: u8,
}

/// The verdict on an instance of configured priority `base` whose tracked
/// objects are `(weight, status)`.
pub fn evaluate(base: u8, tracked: impl IntoIterator<Item = (i32, Status)>) -> Verdict {
    evaluate_reversible(base, tracked.into_iter().map(|(w, s)| (w, false, s)))
}

/// Whether a weight-0 object in `s` (reversed or not) is a fault.
pub fn is_fault(reverse: bool, s: Status) -> bool {
    s == if reverse { Status::Up } else { Status::Down }
}

/// [`evaluate`] of `(weight, reverse, status)` objects.
pub fn evaluate_reversible(
    base: u8,
    tracked: impl IntoIterator<Item = (i32, bool, Status)>,
) -> Verdict {
    let mut fault = false;
    let mut pending = false;
    let mut total: i32 = 0;
    for (w, reverse, s) in tracked {
        let sign = if reverse { -1 } else { 1 };
        match (w, s) {
            (0, Status::Pending) => pending = true,
            (0, s) => fault |= is_fault(reverse, s),
            (w, Status::Up) if w > 0 => total += w * sign,
            (w, Status::Down) if w < 0 => total += w * sign,
            _ => {}
        }
    }
    let priority = if base == super::PRIO_OWNER {
        base
    } else {
        (i32::from(base) + total).clamp(1, 254) as u8
    };
    Verdict {
        fault,
        pending,
        priority,
    }
}

/// One sync-group member as the group sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub state: State,
    /// The member's own tracking (or its interface) says FAULT.
    pub own_fault: bool,
    /// Its master-down timer ran out: it would be master.
    pub wants_master: bool,
}

/// What a sync group's members must do, one entry per member in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupMove {
    Stay,
    /// Into FAULT (the group has a fault).
    Fault,
    /// Out of FAULT: start over as at start-up.
    Recover,
    /// Master now, with the group.
    Master,
    /// Backup now, with the group.
    Backup,
}

/// keepalived's sync-group rules over the members' current states;
/// `demoted` is a member that just went from MASTER to BACKUP, if any.
pub fn group_moves(members: &[Member], demoted: Option<usize>) -> Vec<GroupMove> {
    let mut moves = vec![GroupMove::Stay; members.len()];
    let group_fault = members.iter().any(|m| m.own_fault);
    if group_fault {
        for (i, m) in members.iter().enumerate() {
            if m.state != State::Fault {
                moves[i] = GroupMove::Fault;
            }
        }
        return moves;
    }
    if members.iter().any(|m| m.state == State::Fault) {
        // No member has a fault of its own any more: all start over.
        for (i, m) in members.iter().enumerate() {
            if m.state == State::Fault {
                moves[i] = GroupMove::Recover;
            }
        }
        return moves;
    }
    // A member that just went backup from master takes the masters along.
    if let Some(c) = demoted
        && members.get(c).is_some_and(|m| m.state == State::Backup)
        && members.iter().any(|m| m.state == State::Master)
    {
        for (i, m) in members.iter().enumerate() {
            if m.state == State::Master {
                moves[i] = GroupMove::Backup;
            }
        }
        return moves;
    }
    let has_master = members.iter().any(|m| m.state == State::Master);
    let all_want = members
        .iter()
        .all(|m| m.state == State::Master || m.wants_master);
    if has_master || (all_want && members.iter().any(|m| m.wants_master)) {
        for (i, m) in members.iter().enumerate() {
            if m.state == State::Backup {
                moves[i] = GroupMove::Master;
            }
        }
    }
    moves
}

#[cfg(test)]
mod tests;
