//! The log-linear latency histogram kept by the BPF program: values 0..7 ns exactly, then 8 buckets per
//! power of two (each 12.5% wide). Quantiles interpolate inside a bucket and are clamped to the exact min/max.
use serde::{Deserialize, Serialize};

use super::Nanos;

/// Sub-bucket bits; must match `PG_HIST_SUB_BITS` in `bpf/perfgate.h`.
pub const SUB_BITS: u32 = 3;
/// Bucket count; must match `PG_HIST_BUCKETS` in `bpf/perfgate.h`.
pub const BUCKETS: usize = 328;
const SUB: u64 = 1 << SUB_BITS;

/// The bucket a value falls in, exactly as the BPF program computes it.
pub fn bucket_of(v: Nanos) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros() as u64;
    let idx = (msb - SUB_BITS as u64 + 1) * SUB + ((v >> (msb - SUB_BITS as u64)) & (SUB - 1));
    (idx as usize).min(BUCKETS - 1)
}

/// The half-open value range `[low, high)` of a bucket.
pub fn bucket_range(idx: usize) -> (Nanos, Nanos) {
    let idx = idx as u64;
    if idx < SUB {
        return (idx, idx + 1);
    }
    let group = idx / SUB; // = msb - SUB_BITS + 1
    let sub = idx % SUB;
    let shift = group - 1; // = msb - SUB_BITS
    ((SUB + sub) << shift, (SUB + sub + 1) << shift)
}

/// A sparse histogram: (bucket, count) pairs in bucket order, compact on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Non-empty buckets, ascending.
    pub buckets: Vec<(u16, u64)>,
}

impl Histogram {
    /// From the dense array the BPF program fills.
    pub fn from_dense(dense: &[u64]) -> Self {
        let buckets = dense
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (i as u16, c))
            .collect();
        Histogram { buckets }
    }

    /// Adds another histogram into this one.
    pub fn merge(&mut self, other: &Histogram) {
        let mut dense = std::collections::BTreeMap::new();
        for &(b, c) in self.buckets.iter().chain(other.buckets.iter()) {
            *dense.entry(b).or_insert(0u64) += c;
        }
        self.buckets = dense.into_iter().collect();
    }

    /// Adds one value.
    pub fn record(&mut self, v: Nanos) {
        let b = bucket_of(v) as u16;
        match self.buckets.binary_search_by_key(&b, |&(k, _)| k) {
            Ok(i) => self.buckets[i].1 += 1,
            Err(i) => self.buckets.insert(i, (b, 1)),
        }
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        // Saturating: counts of a damaged file may overflow (`Profile::check_consistent` refuses them).
        self.buckets
            .iter()
            .fold(0u64, |n, &(_, c)| n.saturating_add(c))
    }

    /// The q-quantile (0 ≤ q ≤ 1), interpolated inside its bucket and clamped to `[min, max]`.
    pub fn quantile(&self, q: f64, min: Nanos, max: Nanos) -> Option<f64> {
        let total = self.count();
        if total == 0 || !q.is_finite() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for &(b, c) in &self.buckets {
            if seen.saturating_add(c) as f64 >= rank {
                let (lo, hi) = bucket_range(b as usize);
                let frac = ((rank - seen as f64) / c as f64).clamp(0.0, 1.0);
                let v = lo as f64 + frac * (hi - lo) as f64;
                // `min.min(max)`: clamp panics on an inverted range, which only a damaged file has.
                return Some(v.clamp(min.min(max) as f64, max as f64));
            }
            seen = seen.saturating_add(c);
        }
        Some(max as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_contain_their_values() {
        let mut prev_hi = 0;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_range(i);
            assert_eq!(
                lo,
                prev_hi,
                "bucket {i} starts where {} ended",
                i.saturating_sub(1)
            );
            assert!(hi > lo);
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi - 1), i);
            prev_hi = hi;
        }
    }

    #[test]
    fn bucket_width_is_at_most_an_eighth() {
        for i in 8..BUCKETS {
            let (lo, hi) = bucket_range(i);
            assert!((hi - lo) as f64 / lo as f64 <= 0.125 + 1e-12);
        }
    }

    #[test]
    fn huge_values_land_in_the_last_bucket() {
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_a_uniform_sample_are_close() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 100);
        }
        let p50 = h.quantile(0.5, 100, 1_000_000).unwrap();
        let p99 = h.quantile(0.99, 100, 1_000_000).unwrap();
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.02, "p50 {p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.02, "p99 {p99}");
        assert_eq!(h.quantile(1.0, 100, 1_000_000).unwrap(), 1_000_000.0);
        assert_eq!(h.quantile(0.0, 100, 1_000_000).unwrap(), 100.0);
    }

    #[test]
    fn quantile_of_a_constant_is_exact_after_clamping() {
        let mut h = Histogram::default();
        for _ in 0..1000 {
            h.record(123_456);
        }
        assert_eq!(h.quantile(0.5, 123_456, 123_456), Some(123_456.0));
        assert_eq!(Histogram::default().quantile(0.5, 0, 0), None);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::from_dense(&[0, 2, 0, 1]);
        let b = Histogram::from_dense(&[1, 1]);
        a.merge(&b);
        assert_eq!(a.buckets, vec![(0, 1), (1, 3), (3, 1)]);
        assert_eq!(a.count(), 5);
    }
}
