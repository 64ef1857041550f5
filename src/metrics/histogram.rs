//! A fixed-bucket latency histogram in plain `Cell`s (one shard's, never shared), and its
//! snapshot as the admin thread renders it. Observing is a short scan of 14 bounds, no
//! allocation.

use std::cell::Cell;
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (the last bucket, +Inf, is implicit).
pub const BOUNDS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BOUNDS_NS: [u64; 14] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];
/// Buckets including +Inf.
pub const BUCKETS: usize = BOUNDS_S.len() + 1;

#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative).
    counts: [Cell<u64>; BUCKETS],
    sum_ns: Cell<u64>,
}

/// What a histogram held at one moment: per-bucket counts (not cumulative) and the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub counts: [u64; BUCKETS],
    pub sum_s: f64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS - 1);
        let c = &self.counts[i];
        c.set(c.get() + 1);
        self.sum_ns.set(self.sum_ns.get().saturating_add(ns));
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(Cell::get).sum()
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = [0; BUCKETS];
        for (out, c) in counts.iter_mut().zip(&self.counts) {
            *out = c.get();
        }
        HistogramSnapshot {
            counts,
            sum_s: self.sum_ns.get() as f64 / 1e9,
        }
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Add another shard's observations.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_s += other.sum_s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100)); // ≤ 0.5 ms
        h.observe(Duration::from_micros(500)); // on the bound: ≤ 0.5 ms
        h.observe(Duration::from_millis(7)); // ≤ 10 ms
        h.observe(Duration::from_secs(60)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.counts[0], 2);
        assert_eq!(s.counts[4], 1);
        assert_eq!(s.counts[BUCKETS - 1], 1);
        assert_eq!(s.count(), 4);
        assert_eq!(h.count(), 4);
        assert!((s.sum_s - 60.0076).abs() < 1e-9, "{}", s.sum_s);
    }
}
