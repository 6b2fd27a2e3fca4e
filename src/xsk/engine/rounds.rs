//! Opt-in timing of a worker's rounds, phase by phase, to find what stalls
//! a worker now and then (a long round delays every frame behind it: the
//! latency tail). Off unless `LVSFWD_ROUND_STATS` is set in the daemon's
//! environment; when off a round pays one predictable branch per phase and
//! no clock read (nothing per frame either way). When on, each phase's
//! duration goes into a log2 histogram and the worker logs them when it
//! stops, with its thread's context switches (an involuntary one is the
//! scheduler taking the core away: a stall that is not the worker's own).

use super::monotonic_now;

/// The phases of a round, in order (module doc of [`super`]).
#[derive(Copy, Clone, Debug)]
pub(super) enum Phase {
    /// Snapshot sync (a new one applied).
    Snapshot,
    /// The connection timers (`Dataplane::tick`).
    Timers,
    /// The control thread's questions.
    Queries,
    /// Completions, lending, refill, fill-ring wakeup.
    Recycle,
    /// RX batches through the data plane, and the inbox.
    Rx,
    /// Transmit and drain.
    Tx,
    /// Peers' doorbells, counters, kernel statistics.
    Publish,
    /// The idle sleep in `poll`.
    Sleep,
}

const PHASES: usize = 8;
const NAMES: [&str; PHASES] = [
    "snapshot", "timers", "queries", "recycle", "rx", "tx", "publish", "sleep",
];
/// Log2 buckets of nanoseconds: bucket b holds [2^b, 2^(b+1)).
const BUCKETS: usize = 40;

/// Per-phase histograms of one worker's rounds (boxed by the worker only
/// when enabled).
pub(super) struct RoundStats {
    hist: [[u64; BUCKETS]; PHASES],
    max: [u64; PHASES],
    /// Whole rounds (without the sleep).
    rounds: [u64; BUCKETS],
    round_max: u64,
    round_start: u64,
    mark: u64,
}

/// Whether the environment asks for round statistics.
pub(super) fn enabled() -> bool {
    std::env::var_os("LVSFWD_ROUND_STATS").is_some_and(|v| !v.is_empty() && v != "0")
}

fn bucket(ns: u64) -> usize {
    (63 - ns.max(1).leading_zeros() as usize).min(BUCKETS - 1)
}

impl RoundStats {
    pub(super) fn new() -> Box<RoundStats> {
        Box::new(RoundStats {
            hist: [[0; BUCKETS]; PHASES],
            max: [0; PHASES],
            rounds: [0; BUCKETS],
            round_max: 0,
            round_start: 0,
            mark: 0,
        })
    }

    /// A round starts now.
    pub(super) fn start(&mut self) {
        let t = monotonic_now().0;
        self.round_start = t;
        self.mark = t;
    }

    /// Phase `p` ended now (it began at the previous mark).
    pub(super) fn end(&mut self, p: Phase) {
        let t = monotonic_now().0;
        let d = t.saturating_sub(self.mark);
        self.mark = t;
        let i = p as usize;
        self.hist[i][bucket(d)] += 1;
        self.max[i] = self.max[i].max(d);
        if matches!(p, Phase::Publish) {
            let r = t.saturating_sub(self.round_start);
            self.rounds[bucket(r)] += 1;
            self.round_max = self.round_max.max(r);
        }
    }

    /// The statistics as log lines.
    pub(super) fn report(&self, who: &str) -> Vec<String> {
        fn line(h: &[u64; BUCKETS], max: u64) -> String {
            let n: u64 = h.iter().sum();
            let at_least = |ns: u64| h[bucket(ns)..].iter().sum::<u64>();
            format!(
                "n {n} >=1us {} >=8us {} >=64us {} >=512us {} >=4ms {} max {:.1}us",
                at_least(1 << 10),
                at_least(1 << 13),
                at_least(1 << 16),
                at_least(1 << 19),
                at_least(1 << 22),
                max as f64 / 1e3
            )
        }
        let mut out = vec![format!(
            "{who}: rounds {}",
            line(&self.rounds, self.round_max)
        )];
        for (i, name) in NAMES.iter().enumerate() {
            out.push(format!(
                "{who}: {name} {}",
                line(&self.hist[i], self.max[i])
            ));
        }
        // SAFETY: `ru` is valid for writes; RUSAGE_THREAD is this thread.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; getrusage only writes `ru`.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } == 0 {
            out.push(format!(
                "{who}: context switches voluntary {} involuntary {}",
                ru.ru_nvcsw, ru.ru_nivcsw
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log2_and_bounded() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(1024), 10);
        assert_eq!(bucket(2047), 10);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn a_round_is_counted_once_and_reported_per_phase() {
        let mut s = RoundStats::new();
        s.start();
        for p in [
            Phase::Snapshot,
            Phase::Timers,
            Phase::Queries,
            Phase::Recycle,
            Phase::Rx,
            Phase::Tx,
            Phase::Publish,
        ] {
            s.end(p);
        }
        assert_eq!(s.rounds.iter().sum::<u64>(), 1);
        let r = s.report("w0");
        assert_eq!(r.len(), 1 + PHASES + 1);
        assert!(r[0].starts_with("w0: rounds n 1 "), "{}", r[0]);
        assert!(r[PHASES].starts_with("w0: sleep n 0 "), "{}", r[PHASES]);
    }
}
