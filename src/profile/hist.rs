//! The log-linear latency histogram kept by the BPF program: values below `2^sub_bits` ns exactly, then
//! `2^sub_bits` buckets per power of two (each `1/2^sub_bits` of its lower bound wide: 3.1% at the 5 sub-bits
//! the program uses, 12.5% at the 3 of older recordings), up to 2^43 ns (2.4 hours; longer calls land in the
//! last bucket). Quantiles interpolate inside a bucket and are clamped to the exact min/max. The resolution
//! was chosen by `perfgate bench tail`, which measures the error of a run's quantiles against exact ones.
//!
//! Invariants: a [`Histogram`] carries its resolution (`sub_bits`; recordings written before the field
//! existed read as [`LEGACY_SUB_BITS`]); bucket indices and resolutions read from a file are checked by
//! [`Histogram::validate`], and every function here is total on any input anyway (an index past the last
//! bucket is read as the last bucket), so nothing panics on a damaged file. The buckets of resolution `k`
//! nest inside those of `k - 1`, so a finer histogram coarsens exactly ([`Histogram::coarsened`]), which is
//! how histograms of two resolutions are merged.
use serde::{Deserialize, Serialize};

use super::Nanos;

/// Sub-bucket bits the BPF program uses; must match `PG_HIST_SUB_BITS` in `bpf/perfgate.h`.
pub const SUB_BITS: u32 = 5;
/// Bucket count at [`SUB_BITS`]; must match `PG_HIST_BUCKETS` in `bpf/perfgate.h`.
pub const BUCKETS: usize = buckets_at(SUB_BITS);
/// The resolution of recordings and baselines written before the histogram said its own.
pub const LEGACY_SUB_BITS: u32 = 3;
/// The finest resolution a file may claim (2^8 buckets per power of two: 0.4% wide).
pub const MAX_SUB_BITS: u32 = 8;
/// The highest bit of the longest value with a bucket of its own: 2^43 ns and up share the last one.
const TOP_BIT: u32 = 42;

/// Buckets at `sub_bits` (clamped to `1..=MAX_SUB_BITS`): 328 at 3, 640 at 4, 1248 at 5.
pub const fn buckets_at(sub_bits: u32) -> usize {
    let k = clamp_bits(sub_bits);
    ((TOP_BIT - k + 2) as usize) << k
}

const fn clamp_bits(sub_bits: u32) -> u32 {
    if sub_bits < 1 {
        1
    } else if sub_bits > MAX_SUB_BITS {
        MAX_SUB_BITS
    } else {
        sub_bits
    }
}

/// The bucket a value falls in at the program's resolution, exactly as the BPF program computes it.
pub fn bucket_of(v: Nanos) -> usize {
    bucket_of_at(v, SUB_BITS)
}

/// The bucket a value falls in at `sub_bits` (clamped to `1..=MAX_SUB_BITS`).
pub fn bucket_of_at(v: Nanos, sub_bits: u32) -> usize {
    let k = clamp_bits(sub_bits) as u64;
    let sub = 1u64 << k;
    if v < sub {
        return v as usize;
    }
    let msb = 63 - u64::from(v.leading_zeros());
    let idx = (msb - k + 1) * sub + ((v >> (msb - k)) & (sub - 1));
    (idx as usize).min(buckets_at(k as u32) - 1)
}

/// The half-open value range `[low, high)` of a bucket at the program's resolution.
pub fn bucket_range(idx: usize) -> (Nanos, Nanos) {
    bucket_range_at(idx, SUB_BITS)
}

/// The half-open value range `[low, high)` of a bucket at `sub_bits`; an index past the last bucket is the
/// last bucket.
pub fn bucket_range_at(idx: usize, sub_bits: u32) -> (Nanos, Nanos) {
    let k = clamp_bits(sub_bits) as u64;
    let sub = 1u64 << k;
    let idx = idx.min(buckets_at(k as u32) - 1) as u64;
    if idx < sub {
        return (idx, idx + 1);
    }
    let group = idx / sub; // = msb - k + 1
    let shift = group - 1; // = msb - k, at most TOP_BIT - k: no overflow
    let s = idx % sub;
    ((sub + s) << shift, (sub + s + 1) << shift)
}

fn legacy_sub_bits() -> u32 {
    LEGACY_SUB_BITS
}

/// A sparse histogram: (bucket, count) pairs in bucket order, compact on disk, with its resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Sub-bucket bits: `2^sub_bits` buckets per power of two (absent in older files: 3).
    #[serde(default = "legacy_sub_bits")]
    pub sub_bits: u32,
    /// Non-empty buckets, ascending.
    pub buckets: Vec<(u16, u64)>,
}

impl Default for Histogram {
    /// Empty, at the program's resolution.
    fn default() -> Self {
        Histogram::at(SUB_BITS)
    }
}

impl Histogram {
    /// Empty, at `sub_bits` (clamped to `1..=MAX_SUB_BITS`).
    pub fn at(sub_bits: u32) -> Self {
        Histogram {
            sub_bits: clamp_bits(sub_bits),
            buckets: Vec::new(),
        }
    }

    /// From the dense array the BPF program fills (at [`SUB_BITS`]).
    pub fn from_dense(dense: &[u64]) -> Self {
        let buckets = dense
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (i as u16, c))
            .collect();
        Histogram {
            sub_bits: SUB_BITS,
            buckets,
        }
    }

    /// Checks what a file may have damaged: the resolution, bucket order and indices. One line.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_SUB_BITS).contains(&self.sub_bits) {
            return Err(format!(
                "histogram resolution {} sub-bits (1 to {MAX_SUB_BITS} are read)",
                self.sub_bits
            ));
        }
        let n = buckets_at(self.sub_bits);
        if self.buckets.iter().any(|&(b, _)| b as usize >= n)
            || self.buckets.windows(2).any(|w| w[0].0 >= w[1].0)
        {
            return Err(format!(
                "histogram buckets out of order or past the {n} of its resolution"
            ));
        }
        Ok(())
    }

    /// The same values at a coarser resolution `sub_bits` (exact: buckets nest); a clone when it is not
    /// coarser.
    pub fn coarsened(&self, sub_bits: u32) -> Histogram {
        let k = clamp_bits(sub_bits);
        if k >= self.sub_bits {
            return self.clone();
        }
        let mut out = Histogram::at(k);
        for &(b, c) in &self.buckets {
            let (lo, _) = bucket_range_at(b as usize, self.sub_bits);
            out.add(bucket_of_at(lo, k) as u16, c);
        }
        out
    }

    fn add(&mut self, b: u16, c: u64) {
        match self.buckets.binary_search_by_key(&b, |&(k, _)| k) {
            Ok(i) => self.buckets[i].1 = self.buckets[i].1.saturating_add(c),
            Err(i) => self.buckets.insert(i, (b, c)),
        }
    }

    /// Adds another histogram into this one; of two resolutions, the coarser is kept.
    pub fn merge(&mut self, other: &Histogram) {
        let k = self.sub_bits.min(other.sub_bits);
        let mine = self.coarsened(k);
        let theirs = other.coarsened(k);
        let mut dense = std::collections::BTreeMap::new();
        for &(b, c) in mine.buckets.iter().chain(theirs.buckets.iter()) {
            let e = dense.entry(b).or_insert(0u64);
            *e = e.saturating_add(c);
        }
        self.sub_bits = k;
        self.buckets = dense.into_iter().collect();
    }

    /// Adds one value.
    pub fn record(&mut self, v: Nanos) {
        self.add(bucket_of_at(v, self.sub_bits) as u16, 1);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |n, &(_, c)| n.saturating_add(c))
    }

    /// The non-empty buckets with their value ranges: `(low, high, count)`, ascending.
    pub fn ranges(&self) -> impl Iterator<Item = (Nanos, Nanos, u64)> + '_ {
        self.buckets.iter().map(|&(b, c)| {
            let (lo, hi) = bucket_range_at(b as usize, self.sub_bits);
            (lo, hi, c)
        })
    }

    /// The q-quantile (0 ≤ q ≤ 1), interpolated inside its bucket and clamped to `[min, max]`.
    pub fn quantile(&self, q: f64, min: Nanos, max: Nanos) -> Option<f64> {
        let total = self.count();
        if total == 0 || !q.is_finite() {
            return None;
        }
        let (min, max) = (min.min(max) as f64, max.max(min) as f64);
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (lo, hi, c) in self.ranges() {
            if seen.saturating_add(c) as f64 >= rank {
                let frac = ((rank - seen as f64) / c as f64).clamp(0.0, 1.0);
                let v = lo as f64 + frac * (hi - lo) as f64;
                return Some(v.clamp(min, max));
            }
            seen = seen.saturating_add(c);
        }
        Some(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_contain_their_values_at_every_resolution() {
        for k in 1..=MAX_SUB_BITS {
            let mut prev_hi = 0;
            for i in 0..buckets_at(k) {
                let (lo, hi) = bucket_range_at(i, k);
                assert_eq!(
                    lo, prev_hi,
                    "bucket {i} at {k} starts where the one before ended"
                );
                assert!(hi > lo);
                assert_eq!(bucket_of_at(lo, k), i);
                assert_eq!(bucket_of_at(hi - 1, k), i);
                prev_hi = hi;
            }
            // The last bucket starts at 2^42 + …, and everything longer lands in it.
            assert_eq!(bucket_of_at(u64::MAX, k), buckets_at(k) - 1);
            assert!(bucket_range_at(buckets_at(k) - 1, k).1 <= 1 << 43);
        }
        assert_eq!(
            buckets_at(3),
            328,
            "the size older recordings were written with"
        );
        assert_eq!(BUCKETS, buckets_at(SUB_BITS));
    }

    #[test]
    fn bucket_width_is_at_most_one_over_the_sub_buckets() {
        for k in 1..=MAX_SUB_BITS {
            for i in (1 << k)..buckets_at(k) {
                let (lo, hi) = bucket_range_at(i, k);
                assert!((hi - lo) as f64 / lo as f64 <= 1.0 / (1u64 << k) as f64 + 1e-12);
            }
        }
    }

    #[test]
    fn finer_buckets_nest_in_coarser_ones() {
        for k in 2..=MAX_SUB_BITS {
            for i in 0..buckets_at(k) {
                let (lo, hi) = bucket_range_at(i, k);
                assert_eq!(bucket_of_at(lo, k - 1), bucket_of_at(hi - 1, k - 1));
            }
        }
    }

    #[test]
    fn a_damaged_index_or_resolution_never_panics_and_is_refused() {
        let h = Histogram {
            sub_bits: 3,
            buckets: vec![(u16::MAX, 5)],
        };
        assert!(h.validate().is_err());
        assert!(h.quantile(0.5, 0, 100).is_some());
        let h = Histogram {
            sub_bits: 200,
            buckets: vec![(1, 5)],
        };
        assert!(h.validate().is_err());
        let _ = h.quantile(0.5, 0, 100);
        let _ = h.coarsened(2);
        let old: Histogram = serde_json::from_str(r#"{"buckets":[[1,2]]}"#).unwrap();
        assert_eq!(old.sub_bits, LEGACY_SUB_BITS);
        assert!(old.validate().is_ok());
    }

    #[test]
    fn coarsening_keeps_the_counts_and_merge_keeps_the_coarser() {
        let mut fine = Histogram::at(5);
        let mut coarse = Histogram::at(3);
        for v in (1..5000u64).map(|i| i * 37) {
            fine.record(v);
            coarse.record(v);
        }
        assert_eq!(fine.coarsened(3), coarse);
        let mut m = Histogram::at(5);
        m.merge(&fine);
        assert_eq!(m, fine);
        m.merge(&coarse);
        assert_eq!(m.sub_bits, 3);
        assert_eq!(m.count(), 2 * coarse.count());
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
