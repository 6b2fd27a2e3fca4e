//! What the tester measures: the measurement window, the sink's per-frame
//! accounting and latency histogram (hdrhistogram), and the result record
//! the tester prints for the orchestrator.
//!
//! Attribution rule: a received frame belongs to the window when the stamp
//! it carries (its transmit time) lies inside it, whenever it arrives; so
//! frames in flight at the window's edges are neither lost nor counted
//! twice, and loss is exactly "sent in the window, never seen".
//!
//! Deliberately not here: reading clocks (callers pass `now`), I/O.
#![forbid(unsafe_code)]

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::packet::{read_stamp, stamp_age};

/// `[start_ns, end_ns)` on `CLOCK_MONOTONIC`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Window {
    pub fn contains(&self, t_ns: u64) -> bool {
        (self.start_ns..self.end_ns).contains(&t_ns)
    }
    pub fn secs(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

/// Latency summary of the frames sent in the window, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u64,
    pub min_ns: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// (quantile, ns) for a CDF plot: every percent, then the tail.
    pub cdf: Vec<(f64, u64)>,
}

/// The receive side: counts and the latency histogram.
#[derive(Debug)]
pub struct Sink {
    hist: Histogram<u64>,
    /// Frames with a stamp, whenever sent.
    pub rx_total: u64,
    /// Frames whose stamp lies in the window.
    pub rx_window: u64,
    /// Frames without a stamp (not the generator's).
    pub foreign: u64,
}

impl Default for Sink {
    fn default() -> Self {
        Sink::new()
    }
}

impl Sink {
    pub fn new() -> Sink {
        Sink {
            // 1 ns .. 60 s at 3 significant digits: ~200 KiB, allocated once.
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
            rx_total: 0,
            rx_window: 0,
            foreign: 0,
        }
    }

    /// Accounts one received frame that arrived at `now_ns`.
    pub fn record(&mut self, frame: &[u8], now_ns: u64, w: &Window) {
        let Some(stamp) = read_stamp(frame) else {
            self.foreign += 1;
            return;
        };
        self.rx_total += 1;
        let age = stamp_age(now_ns, stamp);
        if w.contains(now_ns.wrapping_sub(age)) {
            self.rx_window += 1;
            self.hist.saturating_record(age.max(1));
        }
    }

    pub fn latency(&self) -> Latency {
        let h = &self.hist;
        if h.is_empty() {
            return Latency::default();
        }
        let mut cdf: Vec<(f64, u64)> = (0..=100)
            .map(|p| {
                let q = f64::from(p) / 100.0;
                (q, h.value_at_quantile(q))
            })
            .collect();
        for q in [0.995, 0.999, 0.9995, 0.9999] {
            cdf.push((q, h.value_at_quantile(q)));
        }
        cdf.sort_by(|a, b| a.0.total_cmp(&b.0));
        Latency {
            samples: h.len(),
            min_ns: h.min(),
            mean_ns: h.mean(),
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            cdf,
        }
    }
}

/// What one tester run measured (printed as one JSON line).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TesterResult {
    pub window_s: f64,
    /// Frames put on the TX rings with a stamp inside the window.
    pub tx: u64,
    /// Of those, frames that came back.
    pub rx: u64,
    pub tx_total: u64,
    pub rx_total: u64,
    pub foreign: u64,
    /// Generated frames recycled because a TX ring stayed full.
    pub tx_ring_full: u64,
    /// The tester sockets' kernel drops (no fill buffer, RX ring full).
    pub rx_kernel_dropped: u64,
    pub latency: Latency,
}

impl TesterResult {
    pub fn offered_pps(&self) -> f64 {
        per_sec(self.tx, self.window_s)
    }
    pub fn forwarded_pps(&self) -> f64 {
        per_sec(self.rx, self.window_s)
    }
    /// Fraction of the window's frames that never arrived.
    pub fn loss(&self) -> f64 {
        if self.tx == 0 {
            return 0.0;
        }
        1.0 - self.rx.min(self.tx) as f64 / self.tx as f64
    }
}

fn per_sec(n: u64, s: f64) -> f64 {
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;

    use super::*;
    use crate::packet::{Kind, Template};

    fn frame(stamp: u64) -> Vec<u8> {
        let t = Template::new(
            64,
            false,
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            "198.18.0.250:80".parse().unwrap(),
        )
        .unwrap();
        let mut b = vec![0u8; 64];
        let src: SocketAddrV4 = "198.19.0.1:1024".parse().unwrap();
        let n = t.write(&mut b, src, Kind::Ack, stamp);
        b.truncate(n);
        b
    }

    #[test]
    fn frames_count_by_their_send_time_not_their_arrival() {
        let w = Window {
            start_ns: 1_000_000,
            end_ns: 2_000_000,
        };
        let mut s = Sink::new();
        s.record(&frame(999_999), 1_000_500, &w); // sent before: warm-up
        s.record(&frame(1_000_000), 1_010_000, &w); // 10 us
        s.record(&frame(1_999_999), 2_000_019, &w); // arrives after the end
        s.record(&frame(2_000_000), 2_000_100, &w); // sent after: drain
        s.record(&[0u8; 20], 1_500_000, &w);
        assert_eq!((s.rx_total, s.rx_window, s.foreign), (4, 2, 1));
        let l = s.latency();
        assert_eq!(l.samples, 2);
        assert_eq!(l.min_ns, 20);
        assert!((9_990..=10_010).contains(&l.max_ns), "{}", l.max_ns);
        assert_eq!(l.cdf.first().unwrap().0, 0.0);
        assert_eq!(l.cdf.last().unwrap().0, 1.0);
        assert!(
            l.cdf
                .windows(2)
                .all(|p| p[0].0 < p[1].0 && p[0].1 <= p[1].1)
        );
    }

    #[test]
    fn percentiles_follow_the_distribution() {
        let w = Window {
            start_ns: 0,
            end_ns: u64::MAX,
        };
        let mut s = Sink::new();
        // 990 frames at 5 us, 10 at 100 us: p50 5 us, p99 at the edge,
        // p99.9 100 us.
        for i in 0..1000u64 {
            let age = if i < 990 { 5_000 } else { 100_000 };
            s.record(&frame(10_000_000), 10_000_000 + age, &w);
        }
        let l = s.latency();
        assert_eq!(l.samples, 1000);
        assert!((4_995..=5_005).contains(&l.p50_ns));
        assert!((4_995..=5_005).contains(&l.p99_ns));
        assert!((99_900..=100_100).contains(&l.p999_ns));
        assert_eq!(Sink::new().latency(), Latency::default());
    }

    #[test]
    fn rates_and_loss() {
        let r = TesterResult {
            window_s: 2.0,
            tx: 2_000_000,
            rx: 1_900_000,
            ..TesterResult::default()
        };
        assert_eq!(r.offered_pps(), 1_000_000.0);
        assert_eq!(r.forwarded_pps(), 950_000.0);
        assert!((r.loss() - 0.05).abs() < 1e-12);
        assert_eq!(TesterResult::default().loss(), 0.0);
        assert_eq!(TesterResult::default().forwarded_pps(), 0.0);
    }
}
