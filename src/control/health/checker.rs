//! One checker's timer and retry state machine (keepalived's checker_t as
//! driven by tcp_epilog / http epilog / misc_check_child_thread).
//!
//! Owns: when the next probe is due and what a probe result means for the
//! checker's own verdict (up or down). It knows nothing about real servers,
//! pools or sockets: the engine feeds it results and reads [`Transition`]s.
//!
//! Rules (keepalived 2.x):
//! - a checker starts up, or down in alpha mode; its first probe is due after
//!   a random share of `warmup` (the draw is passed in);
//! - a success resets the retry counter; if the checker was down it goes up
//!   at once (one success is enough);
//! - a failure while up (or before the first verdict) is retried after
//!   `delay_before_retry` until `retry` retries have failed too, then the
//!   checker goes down; the first verdict gets no retries (keepalived starts
//!   every checker with its retry counter spent: "one failure is enough
//!   initially");
//! - while down, probes run every `down_interval` and failures change
//!   nothing;
//! - HTTP_GET / SSL_GET without `fast_recovery` (`confirm` = the number of
//!   urls): keepalived checks one url per probe, a delay_loop apart, and a
//!   server comes up only once every url has passed in a row. lvsfwd's
//!   probe checks every url, so the same wait is kept as successes: a
//!   checker coming up from alpha needs `confirm` successes, one recovering
//!   from a failure `confirm + 1` (the failed url, then each url again),
//!   each a delay_loop after the last. A failure while recovering is
//!   retried after `delay_before_retry` without starting over; one while
//!   coming up from alpha is a failure of the first verdict (recovery
//!   from the start). `fast_recovery` (`confirm` 0): the first success is
//!   enough, as keepalived then checks the urls back to back.
//!
//! Invariant: `retry_it <= retry`; the next probe is never before the time of
//! the result that scheduled it.

use std::time::Duration;

use crate::time::Timestamp;

/// Timing and retry rules of one checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckerParams {
    /// Between two regular probes (the virtual server's `delay_loop`).
    pub delay_loop: Duration,
    /// Between a failed probe and its retry.
    pub delay_before_retry: Duration,
    /// Retries after a failed probe before the checker goes down.
    pub retry: u32,
    /// Between two probes while the checker is down (HTTP_GET waits the
    /// longer of delay_loop and delay_before_retry, the others delay_loop).
    pub down_interval: Duration,
    /// Start down and wait for a first success (keepalived `alpha`).
    pub alpha: bool,
    /// The first probe is due at a random point within this span after
    /// start (keepalived's `warmup`, by default `delay_loop`).
    pub warmup: Duration,
    /// Successes that confirm a recovery (see the module docs): the number
    /// of urls of an HTTP_GET / SSL_GET without fast_recovery, else 0.
    pub confirm: u32,
}

/// What a probe result did to the checker's verdict.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed (a success while up, a failure being retried, a
    /// failure while down).
    None,
    /// The checker went up.
    Up,
    /// The checker went down.
    Down,
    /// The first verdict of an alpha-mode checker is a failure: it was
    /// already counted down, nothing changes, but keepalived still runs the
    /// real server's notify_down once.
    StaysDown,
}

/// The state machine of one checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checker {
    params: CheckerParams,
    is_up: bool,
    has_run: bool,
    retry_it: u32,
    due: Timestamp,
    /// Successes still needed before the checker goes up, while confirming.
    confirm_left: Option<u32>,
    /// The confirmation is the first verdict's (alpha start).
    confirm_first: bool,
}

impl Checker {
    /// A new checker started at `now`; `warmup_draw` in `[0, 1]` places the
    /// first probe within the warmup span (values outside are clamped).
    pub fn new(params: CheckerParams, now: Timestamp, warmup_draw: f64) -> Checker {
        let draw = if warmup_draw.is_finite() {
            warmup_draw.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let first = params.warmup.mul_f64(draw);
        Checker {
            is_up: !params.alpha,
            has_run: false,
            retry_it: params.retry,
            due: now + first,
            params,
            confirm_left: None,
            confirm_first: false,
        }
    }

    pub fn params(&self) -> &CheckerParams {
        &self.params
    }

    /// The checker's own verdict.
    pub fn is_up(&self) -> bool {
        self.is_up
    }

    /// Whether a probe result has been taken yet.
    pub fn has_run(&self) -> bool {
        self.has_run
    }

    /// When the next probe is due.
    pub fn next_due(&self) -> Timestamp {
        self.due
    }

    /// Takes the result of the probe that was due, at `now`, and schedules
    /// the next one.
    pub fn on_result(&mut self, now: Timestamp, ok: bool) -> Transition {
        let p = &self.params;
        let first = !self.has_run;
        self.has_run = true;
        if ok {
            self.retry_it = 0;
            self.due = now + p.delay_loop;
            if !self.is_up {
                let left = match self.confirm_left {
                    Some(k) => k.saturating_sub(1),
                    None if first => p.confirm.saturating_sub(1),
                    None => p.confirm,
                };
                if left > 0 {
                    if self.confirm_left.is_none() {
                        self.confirm_first = first;
                    }
                    self.confirm_left = Some(left);
                    return Transition::None;
                }
                self.confirm_left = None;
                self.is_up = true;
                return Transition::Up;
            }
            return Transition::None;
        }
        if self.confirm_left.is_some() {
            if !self.confirm_first {
                // keepalived retries the url that failed, not the list.
                self.due = now + p.delay_before_retry;
                return Transition::None;
            }
            // Coming up from alpha: the first verdict is a failure.
            self.confirm_left = None;
            self.due = now + p.down_interval;
            return Transition::StaysDown;
        }
        if !self.is_up && !first {
            self.due = now + p.down_interval;
            return Transition::None;
        }
        if self.retry_it < p.retry {
            self.retry_it += 1;
            self.due = now + p.delay_before_retry;
            return Transition::None;
        }
        self.retry_it = 0;
        self.due = now + p.down_interval;
        if self.is_up {
            self.is_up = false;
            Transition::Down
        } else {
            Transition::StaysDown
        }
    }

    /// A round skipped while suspended (ha_suspend): the next probe is a
    /// delay_loop away, the verdict and retries unchanged.
    pub fn skip(&mut self, now: Timestamp) {
        self.due = now + self.params.delay_loop;
    }

    /// Carries the verdict and timers of `old` (same check, previous
    /// configuration) over a reload at `now`, as keepalived's
    /// migrate_checkers: a checker that was down stays down, retries already
    /// spent count against a smaller `retry`, and the next probe keeps its
    /// time unless the new delay_loop brings it closer.
    pub fn migrate_from(&mut self, old: &Checker, now: Timestamp) {
        self.is_up = old.is_up;
        self.has_run = old.has_run;
        self.retry_it = old.retry_it.min(self.params.retry);
        if !self.is_up && self.params.confirm > 0 {
            self.confirm_left = old.confirm_left.map(|k| k.min(self.params.confirm + 1));
            self.confirm_first = old.confirm_first;
        }
        self.due = old.due.min(now + self.params.delay_loop);
    }
}
