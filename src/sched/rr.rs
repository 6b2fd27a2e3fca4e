//! Round-robin (`ip_vs_rr.c`).
//!
//! Owns one cursor: the list entry the last connection went to, or the list
//! head before the first one. Each pick walks forward from the cursor,
//! wrapping once, and takes the first dest that is linked, not overloaded and
//! of positive weight; the cursor itself is looked at last.
//!
//! Removal follows `ip_vs_rr_del_dest`: when the dest under the cursor is
//! unlinked the cursor steps back to the previous linked entry (or the head),
//! so the rotation carries on with the removed dest's successor instead of
//! starting over. Added dests and weight edits leave the cursor alone, as the
//! kernel has no hook for them.

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

use super::common::usable;

/// IPVS `rr`.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// `svc->sched_data`: `None` is the list head.
    cursor: Option<usize>,
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }
}

impl Scheduler for RoundRobin {
    fn kind(&self) -> SchedKind {
        SchedKind::Rr
    }

    fn update(&mut self, dests: &[Dest]) {
        if let Some(c) = self.cursor {
            let linked = dests.get(c).is_some_and(|d| d.available);
            if !linked {
                let end = c.min(dests.len());
                self.cursor = (0..end).rev().find(|&j| dests[j].available);
            }
        }
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let start = self.cursor.map_or(0, |c| c + 1);
        // First pass: after the cursor to the end of the list.
        for (i, d) in dests.iter().enumerate().skip(start) {
            if usable(d) {
                self.cursor = Some(i);
                return Some(i);
            }
        }
        // From the head there is nothing left to look at; otherwise wrap and
        // go up to and including the cursor entry.
        let last = self.cursor?;
        for (i, d) in dests.iter().enumerate() {
            if !d.available {
                continue;
            }
            if usable(d) {
                self.cursor = Some(i);
                return Some(i);
            }
            if i == last {
                break;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{any, dests};

    fn run(s: &mut RoundRobin, d: &[Dest], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| s.schedule(d, &any())).collect()
    }

    fn some(v: &[usize]) -> Vec<Option<usize>> {
        v.iter().map(|&i| Some(i)).collect()
    }

    #[test]
    fn rotates_in_list_order_ignoring_weights() {
        let d = dests(&[5, 1, 3]);
        let mut s = RoundRobin::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 7), some(&[0, 1, 2, 0, 1, 2, 0]));
    }

    #[test]
    fn skips_quiesced_and_overloaded() {
        let mut d = dests(&[1, 0, 1, 1]);
        d[2].overloaded = true;
        let mut s = RoundRobin::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 4), some(&[0, 3, 0, 3]));
        d[2].overloaded = false;
        assert_eq!(run(&mut s, &d, 3), some(&[0, 2, 3]));
    }

    #[test]
    fn nothing_usable_gives_none_and_keeps_cursor() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = RoundRobin::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 2), some(&[0, 1]));
        for x in d.iter_mut() {
            x.weight = 0;
        }
        assert_eq!(run(&mut s, &d, 2), vec![None, None]);
        for x in d.iter_mut() {
            x.weight = 1;
        }
        assert_eq!(run(&mut s, &d, 1), some(&[2]));
    }

    #[test]
    fn empty_and_single() {
        let mut s = RoundRobin::new();
        assert_eq!(s.schedule(&[], &any()), None);
        let d = dests(&[1]);
        s.update(&d);
        // the cursor entry itself is reached on the wrap-around pass
        assert_eq!(run(&mut s, &d, 3), some(&[0, 0, 0]));
    }

    #[test]
    fn removing_the_cursor_dest_continues_with_its_successor() {
        let mut d = dests(&[1, 1, 1, 1]);
        let mut s = RoundRobin::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 2), some(&[0, 1]));
        d[1].available = false;
        s.update(&d);
        // a reset to the head would give 0 here
        assert_eq!(run(&mut s, &d, 4), some(&[2, 3, 0, 2]));
    }

    #[test]
    fn removing_the_first_entry_under_the_cursor_goes_back_to_head() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = RoundRobin::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 1), some(&[0]));
        d[0].available = false;
        s.update(&d);
        assert_eq!(run(&mut s, &d, 3), some(&[1, 2, 1]));
    }

    #[test]
    fn removing_cursor_and_its_predecessor_steps_back_twice() {
        let mut d = dests(&[1, 1, 1, 1]);
        let mut s = RoundRobin::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 3), some(&[0, 1, 2]));
        d[2].available = false;
        d[1].available = false;
        s.update(&d);
        assert_eq!(run(&mut s, &d, 3), some(&[3, 0, 3]));
    }

    #[test]
    fn removing_another_dest_keeps_cursor() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = RoundRobin::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 2), some(&[0, 1]));
        d[0].available = false;
        s.update(&d);
        assert_eq!(run(&mut s, &d, 3), some(&[2, 1, 2]));
    }

    #[test]
    fn added_dest_joins_the_rotation() {
        let mut d = dests(&[1, 1]);
        let mut s = RoundRobin::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 1), some(&[0]));
        d.extend(dests(&[1, 1, 1]).into_iter().skip(2));
        s.update(&d);
        assert_eq!(run(&mut s, &d, 4), some(&[1, 2, 0, 1]));
    }

    #[test]
    fn unlinked_cursor_without_update_still_terminates() {
        let mut d = dests(&[1, 1]);
        let mut s = RoundRobin::new();
        assert_eq!(run(&mut s, &d, 2), some(&[0, 1]));
        d[1].available = false;
        d[0].weight = 0;
        assert_eq!(s.schedule(&d, &any()), None);
    }
}
