//! Weighted round-robin (`ip_vs_wrr.c`).
//!
//! State is the kernel's `ip_vs_wrr_mark`: the last picked entry `cl` (or the
//! list head), the current weight `cw`, the step `di` (gcd of the positive
//! weights) and the top `mw` (max weight minus `di - 1`, so the last pass
//! asks for weight >= 1). A pick walks forward from `cl` for a linked,
//! non-overloaded dest with weight >= `cw`; each time the walk falls off the
//! end `cw` drops by `di`, and below 1 it restarts at `mw`.
//!
//! Every [`Scheduler::update`] is one `ip_vs_wrr_dest_changed` (add, delete
//! or weight edit): `cl` goes back to the head, `di`/`mw` are recomputed and
//! `cw` is clamped to `mw` or, with `di > 1`, moved onto the new grid
//! (`cw / di * di + 1`). Several edits folded into one update are applied as
//! one change.

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

/// IPVS `wrr`.
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// Current entry; `None` is the list head.
    cl: Option<usize>,
    cw: i32,
    mw: i32,
    di: i32,
}

fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl WeightedRoundRobin {
    pub fn new() -> WeightedRoundRobin {
        WeightedRoundRobin::default()
    }
}

impl Scheduler for WeightedRoundRobin {
    fn kind(&self) -> SchedKind {
        SchedKind::Wrr
    }

    fn update(&mut self, dests: &[Dest]) {
        let linked = || dests.iter().filter(|d| d.available);
        let g = linked()
            .map(|d| d.weight)
            .filter(|&w| w > 0)
            .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
        let max = linked().map(|d| d.weight).fold(0, i32::max);
        self.cl = None;
        self.di = if g > 0 { g } else { 1 };
        self.mw = max - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let last = self.cl;
        let mut from = self.cl;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let begin = from.map_or(0, |c| c + 1);
            for (i, d) in dests.iter().enumerate().skip(begin) {
                if !d.available {
                    continue;
                }
                if !d.overloaded && d.weight >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            from = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Either this call already did a full weight >= 1 pass, or
                // it started at the head, so every dest was tried.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The weight >= 1 pass so far only covered the dests after
                // `last`: finish it on the ones up to `last`.
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{any, dests};

    fn run(s: &mut WeightedRoundRobin, d: &[Dest], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| s.schedule(d, &any())).collect()
    }

    fn some(v: &[usize]) -> Vec<Option<usize>> {
        v.iter().map(|&i| Some(i)).collect()
    }

    fn fresh(d: &[Dest]) -> WeightedRoundRobin {
        let mut s = WeightedRoundRobin::new();
        s.update(d);
        s
    }

    #[test]
    fn sequence_2_1_1() {
        let d = dests(&[2, 1, 1]);
        let mut s = fresh(&d);
        assert_eq!(run(&mut s, &d, 8), some(&[0, 0, 1, 2, 0, 0, 1, 2]));
    }

    #[test]
    fn sequence_4_3_2() {
        let d = dests(&[4, 3, 2]);
        let mut s = fresh(&d);
        let cycle = [0, 0, 1, 0, 1, 2, 0, 1, 2];
        let want: Vec<usize> = cycle.iter().chain(cycle.iter()).copied().collect();
        assert_eq!(run(&mut s, &d, 18), some(&want));
    }

    #[test]
    fn gcd_step_with_common_divisor() {
        // di = 2, mw = 3: cw runs 3, 1
        let d = dests(&[4, 2]);
        let mut s = fresh(&d);
        assert_eq!((s.di, s.mw, s.cw), (2, 3, 3));
        assert_eq!(run(&mut s, &d, 6), some(&[0, 0, 1, 0, 0, 1]));
    }

    #[test]
    fn weight_edit_moves_cw_onto_new_grid() {
        let mut d = dests(&[4, 3, 2]);
        let mut s = fresh(&d);
        assert_eq!(run(&mut s, &d, 4), some(&[0, 0, 1, 0]));
        assert_eq!(s.cw, 2);
        d[1].weight = 2; // 4:2:2 -> di 2, mw 3, cw 2 -> 3
        s.update(&d);
        assert_eq!((s.di, s.mw, s.cw, s.cl), (2, 3, 3, None));
        // with cw left at 2 the second pick would be dest 1
        assert_eq!(run(&mut s, &d, 8), some(&[0, 0, 1, 2, 0, 0, 1, 2]));
    }

    #[test]
    fn weight_edit_clamps_cw_to_new_max() {
        let mut d = dests(&[4, 3, 2]);
        let mut s = fresh(&d);
        assert_eq!(run(&mut s, &d, 1), some(&[0]));
        assert_eq!(s.cw, 4);
        d[0].weight = 1; // mw 3
        s.update(&d);
        assert_eq!(s.cw, 3);
        assert_eq!(run(&mut s, &d, 6), some(&[1, 1, 2, 0, 1, 2]));
    }

    #[test]
    fn quiesced_and_overloaded_are_skipped() {
        let mut d = dests(&[2, 0, 1]);
        let mut s = fresh(&d);
        assert_eq!(run(&mut s, &d, 6), some(&[0, 0, 2, 0, 0, 2]));
        d[0].overloaded = true;
        assert_eq!(run(&mut s, &d, 3), some(&[2, 2, 2]));
    }

    #[test]
    fn all_overloaded_gives_none_then_recovers() {
        let mut d = dests(&[2, 1]);
        let mut s = fresh(&d);
        assert_eq!(run(&mut s, &d, 1), some(&[0]));
        d[0].overloaded = true;
        d[1].overloaded = true;
        assert_eq!(run(&mut s, &d, 2), vec![None, None]);
        d[0].overloaded = false;
        d[1].overloaded = false;
        assert!(run(&mut s, &d, 3).iter().all(|x| x.is_some()));
    }

    #[test]
    fn failed_last_pass_stops_at_the_previous_pick() {
        let mut d = dests(&[1, 2]);
        let mut s = fresh(&d);
        assert_eq!(run(&mut s, &d, 2), some(&[1, 0]));
        d[0].overloaded = true;
        d[1].overloaded = true;
        assert_eq!(run(&mut s, &d, 1), vec![None]);
        // the weight >= 1 pass ended at the previous pick, which stays
        // current with cw 1 (a pass through the head would reset cw to 2)
        assert_eq!((s.cl, s.cw), (Some(0), 1));
        d[0].overloaded = false;
        d[1].overloaded = false;
        assert_eq!(run(&mut s, &d, 3), some(&[1, 1, 0]));
    }

    #[test]
    fn all_zero_weights_mean_no_dest() {
        let d = dests(&[0, 0]);
        let mut s = fresh(&d);
        assert_eq!(s.mw, 0);
        assert_eq!(run(&mut s, &d, 2), vec![None, None]);
        assert_eq!(run(&mut fresh(&[]), &[], 1), vec![None]);
    }

    #[test]
    fn removed_dest_is_skipped_and_weights_recomputed() {
        let mut d = dests(&[4, 3, 2]);
        let mut s = fresh(&d);
        assert_eq!(run(&mut s, &d, 2), some(&[0, 0]));
        d[0].available = false; // 3:2 -> mw 3
        s.update(&d);
        assert_eq!(s.mw, 3);
        assert_eq!(run(&mut s, &d, 5), some(&[1, 1, 2, 1, 2]));
    }

    #[test]
    fn proportions_over_a_long_run() {
        let d = dests(&[5, 3, 1]);
        let mut s = fresh(&d);
        let mut n = [0; 3];
        for x in run(&mut s, &d, 900) {
            n[x.unwrap()] += 1;
        }
        assert_eq!(n, [500, 300, 100]);
    }
}
