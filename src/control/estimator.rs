//! IPVS's rate estimator (`ip_vs_est.c`), for `lvsadm -L --rate`.
//!
//! Every 2 seconds the control thread feeds the cumulative counters of each
//! service and real server; the estimator turns the difference into
//! per-second rates and smooths them with IPVS's exponentially weighted
//! average (new = old + (sample - old) / 4), in IPVS's fixed point: rates of
//! connections and packets carry 10 fraction bits, byte rates 5, and the
//! value shown is rounded from the fixed point the same way (adding just
//! under one half). Pure: the
//! caller decides when a sample is taken.

use crate::service::Stats;
use crate::view::Rates;

/// The estimator's sampling period.
pub const PERIOD_SECS: u64 = 2;

/// The smoothed rates of one counter set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Option<Stats>,
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

fn smooth(avg: &mut i64, sample: i64) {
    *avg += (sample - *avg) >> 2;
}

impl Estimator {
    /// Takes one 2-second sample of the cumulative counters `now`. The first
    /// sample only sets the baseline. Counters that went backwards (zeroed
    /// with `-Z`) restart the baseline without a spike.
    pub fn sample(&mut self, now: &Stats) {
        let Some(last) = self.last.replace(*now) else {
            return;
        };
        if now.conns < last.conns
            || now.inpkts < last.inpkts
            || now.outpkts < last.outpkts
            || now.inbytes < last.inbytes
            || now.outbytes < last.outbytes
        {
            return;
        }
        // A 2 s difference scaled by 2^10 per second is the difference << 9;
        // bytes carry 2^5 per second: << 4.
        let d = |a: u64, b: u64| (a - b) as i64;
        smooth(&mut self.cps, d(now.conns, last.conns) << 9);
        smooth(&mut self.inpps, d(now.inpkts, last.inpkts) << 9);
        smooth(&mut self.outpps, d(now.outpkts, last.outpkts) << 9);
        smooth(&mut self.inbps, d(now.inbytes, last.inbytes) << 4);
        smooth(&mut self.outbps, d(now.outbytes, last.outbytes) << 4);
    }

    /// The rates as `--rate` shows them.
    pub fn rates(&self) -> Rates {
        let pps = |v: i64| ((v.max(0) + 0x1ff) >> 10) as u64;
        let bps = |v: i64| ((v.max(0) + 0xf) >> 5) as u64;
        Rates {
            cps: pps(self.cps),
            inpps: pps(self.inpps),
            outpps: pps(self.outpps),
            inbps: bps(self.inbps),
            outbps: bps(self.outbps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(conns: u64, pkts: u64, bytes: u64) -> Stats {
        Stats {
            conns,
            inpkts: pkts,
            outpkts: pkts / 2,
            inbytes: bytes,
            outbytes: bytes / 2,
        }
    }

    #[test]
    fn converges_to_the_steady_rate() {
        let mut e = Estimator::default();
        e.sample(&stats(0, 0, 0));
        assert_eq!(e.rates(), Rates::default(), "one sample is only a baseline");
        // 100 conns/s, 1000 pkts/s, 100 kB/s, for two minutes.
        for i in 1..=60u64 {
            e.sample(&stats(200 * i, 2000 * i, 200_000 * i));
        }
        let r = e.rates();
        assert_eq!(r.cps, 100);
        assert_eq!(r.inpps, 1000);
        assert_eq!(r.outpps, 500);
        assert_eq!(r.inbps, 100_000);
        assert_eq!(r.outbps, 50_000);
    }

    #[test]
    fn smooths_a_step_by_a_quarter_per_sample() {
        let mut e = Estimator::default();
        e.sample(&stats(0, 0, 0));
        e.sample(&stats(800, 0, 0)); // 400/s sample: avg 0 + 400/4
        assert_eq!(e.rates().cps, 100);
        e.sample(&stats(1600, 0, 0)); // 100 + (400-100)/4 = 175
        assert_eq!(e.rates().cps, 175);
        e.sample(&stats(1600, 0, 0)); // 175 - 175/4 = 131.25
        assert_eq!(e.rates().cps, 131);
    }

    #[test]
    fn zeroed_counters_do_not_spike() {
        let mut e = Estimator::default();
        e.sample(&stats(1000, 1000, 1000));
        e.sample(&stats(0, 0, 0));
        assert_eq!(e.rates(), Rates::default());
        e.sample(&stats(20, 0, 0));
        assert_eq!(e.rates().cps, 2, "10/s sample, quartered: 2.5 shows as 2");
    }
}
