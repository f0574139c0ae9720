//! Pure statistics for the performance gate.
//!
//! Every function here works on per-run figures: one number per benchmark run
//! (for example the mean inclusive time of one function in that run), `base`
//! being the runs of the base revision and `head` the runs of the revision
//! under test. Nothing in this module does I/O or depends on the rest of the
//! crate.
//!
//! * [`mann_whitney`]: Mann–Whitney U test of head against base, exact for
//!   small samples (ties included: the exact distribution of U given the tie
//!   pattern, with midranks), normal approximation otherwise (matching
//!   `scipy.stats.mannwhitneyu` in both cases without ties, and exact
//!   permutation p-values with ties).
//! * [`hodges_lehmann`]: Hodges–Lehmann estimate of the shift head − base with
//!   its distribution-free (Moses) confidence interval.
//! * [`ratio_estimate`]: the same on the log scale, giving the ratio head / base.
//! * [`shift_estimates`], [`ratio_estimates`]: the same at several confidence
//!   levels at once (the sequential rule needs the look's and the
//!   equivalence interval of every function at every look).
//! * [`benjamini_hochberg`]: false-discovery-rate adjusted q-values.
//! * [`median`], [`mean`], [`quantile`]: small descriptive helpers.
//! * [`min_p_two_sided`]: the smallest two-sided p-value a sample size allows.
//! * [`normal_quantile`], [`normal_upper_tail`]: the standard normal, for the
//!   sequential rule's boundaries.
//!
//! No function panics on empty, NaN or infinite input: each documents what it
//! returns instead (usually `None`). The exact distributions are computed in
//! 128-bit integers (never rounded before the final division) and the null
//! distribution without ties is kept in a small per-thread cache keyed by the
//! two sample sizes, so repeated tests of the same sizes (one per function at
//! each look of a check) pay for it once.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use statrs::function::erf::{erfc, erfc_inv};

/// Largest number of pairs `n_base * n_head` for which exact null
/// distributions are used (50 vs 50 runs is the largest balanced design).
///
/// [`mann_whitney`] uses the exact distribution (the conditional one given
/// the ties, when there are ties) when `n_base * n_head <= EXACT_MAX_PAIRS`;
/// [`hodges_lehmann`] (and [`ratio_estimate`]) choose the rank of the
/// interval endpoints from the exact distribution under the same size
/// condition, ties or not. All counts of the exact distributions fit in
/// 128-bit integers within this limit (they are at most `C(100, 50) ≈ 1e29`),
/// so the exact p-values are the exact rational values rounded once to `f64`.
/// The work of the distribution with ties is at most
/// `(n_base + n_head) · min(n_base, n_head) · (2 n_base n_head + 1)` integer
/// additions (≈ 25 million at 50 vs 50, a few milliseconds).
pub const EXACT_MAX_PAIRS: usize = 2500;

/// Result of the Mann–Whitney U (Wilcoxon rank-sum) test of `head` against
/// `base`; see [`mann_whitney`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// U statistic of head: the number of (base, head) pairs where the head
    /// value is larger, ties counting 1/2. Ranges from 0 (every head run
    /// below every base run) to `n_base * n_head`; `n_base * n_head / 2` means
    /// no tendency either way. Equals the statistic of
    /// `scipy.stats.mannwhitneyu(head, base)`.
    pub u_head: f64,
    /// Two-sided p-value (H1: the distributions differ by a shift in either
    /// direction). Computed as scipy does: `2 * min(p_greater, p_less)` for
    /// the exact test, and from the larger of the two U statistics for the
    /// normal approximation; capped at 1.
    pub p_two_sided: f64,
    /// One-sided p-value for H1: head tends to be larger than base (a
    /// regression when the figure is a time).
    pub p_greater: f64,
    /// One-sided p-value for H1: head tends to be smaller than base.
    pub p_less: f64,
    /// Whether the p-values come from the exact null distribution (`true`;
    /// with ties, the exact distribution given the tie pattern) or from the
    /// normal approximation with tie and continuity correction (`false`).
    pub exact: bool,
}

/// Mann–Whitney U test of `head` against `base`.
///
/// Method:
/// * **Exact** when `base.len() * head.len() <= EXACT_MAX_PAIRS` (see
///   [`EXACT_MAX_PAIRS`]).
///   - Without ties: the null distribution of U is computed exactly (counts
///     of the arrangements with each U, from the Gaussian binomial
///     coefficient), as `scipy.stats.mannwhitneyu(head, base,
///     method='exact')`. This is more often exact than scipy's
///     `method='auto'`, which only uses the exact distribution when one
///     sample has at most 8 values.
///   - With ties: U is computed with midranks, and its null distribution is
///     the exact *conditional* one given the tie pattern: every one of the
///     `C(n_base + n_head, n_head)` ways to label the pooled values as head
///     is equally likely, so the p-values are exactly those of the
///     permutation test (as `scipy.stats.permutation_test` enumerating all
///     splits). scipy's `method='exact'` ignores ties and its `'auto'`
///     switches to the normal approximation, which is anti-conservative on
///     small samples (base `[1, 2, 3, 4]` vs head `[4, 5, 6, 7]`: 0.042
///     instead of the exact 0.057).
/// * **Normal approximation** otherwise, with the tie correction of the
///   variance and the continuity correction, as
///   `scipy.stats.mannwhitneyu(head, base, method='asymptotic',
///   use_continuity=True)`. When every pooled value is equal the variance is
///   zero and all three p-values are 1.
///
/// Infinite values are ranked normally (they are just the smallest or largest
/// values). Returns `None` if either sample is empty or any value is NaN.
pub fn mann_whitney(base: &[f64], head: &[f64]) -> Option<MannWhitney> {
    if base.is_empty() || head.is_empty() || base.iter().chain(head).any(|x| x.is_nan()) {
        return None;
    }
    let (n1, n2) = (base.len(), head.len());
    let ranks = rank_sum_head(base, head);
    let small = n1.checked_mul(n2).is_some_and(|p| p <= EXACT_MAX_PAIRS);
    if small {
        if let Some(r) = exact_test(&ranks, n1, n2) {
            return Some(r);
        }
    }
    Some(normal_approximation(&ranks, n1, n2))
}

/// The exact test; `None` when a count does not fit in 128 bits (never
/// within [`EXACT_MAX_PAIRS`]).
fn exact_test(ranks: &Ranks, n1: usize, n2: usize) -> Option<MannWhitney> {
    // 2U of head, an integer with midranks: 2 * rank sum - n2 (n2 + 1).
    let doubled_u = ranks
        .doubled_rank_sum_head
        .checked_sub(n2 as u128 * (n2 as u128 + 1))?;
    let doubled_u = usize::try_from(doubled_u).ok()?;
    let (p_greater, p_less) = if ranks.has_ties {
        let dist = TiedUDistribution::new(&ranks.tie_groups, n1, n2)?;
        (dist.sf(doubled_u), dist.cdf(doubled_u))
    } else {
        let dist = UDistribution::cached(n1, n2)?;
        // Without ties 2U is even.
        let u = doubled_u / 2;
        (dist.sf(u), dist.cdf(u))
    };
    Some(MannWhitney {
        u_head: doubled_u as f64 / 2.0,
        p_two_sided: (2.0 * p_greater.min(p_less)).min(1.0),
        p_greater,
        p_less,
        exact: true,
    })
}

/// The normal approximation with tie and continuity correction.
fn normal_approximation(ranks: &Ranks, n1: usize, n2: usize) -> MannWhitney {
    let n2f = n2 as f64;
    let pairs = n1 as f64 * n2f;
    let u_head = ranks.rank_sum_head - n2f * (n2f + 1.0) / 2.0;
    let u_base = pairs - u_head;
    let mu = pairs / 2.0;
    let n = (n1 + n2) as f64;
    // n >= 2 because both samples are non-empty.
    let variance = pairs / 12.0 * ((n + 1.0) - ranks.tie_term / (n * (n - 1.0)));
    if variance.is_nan() || variance <= 0.0 {
        return MannWhitney {
            u_head,
            p_two_sided: 1.0,
            p_greater: 1.0,
            p_less: 1.0,
            exact: false,
        };
    }
    let s = variance.sqrt();
    let sf_of = |u: f64| normal_sf((u - mu - 0.5) / s).clamp(0.0, 1.0);
    MannWhitney {
        u_head,
        p_two_sided: (2.0 * sf_of(u_head.max(u_base))).min(1.0),
        p_greater: sf_of(u_head),
        p_less: sf_of(u_base),
        exact: false,
    }
}

/// Hodges–Lehmann estimate of a shift with its confidence interval; see
/// [`hodges_lehmann`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShiftEstimate {
    /// Median of all pairwise differences `head[j] - base[i]`.
    pub estimate: f64,
    /// Lower end of the confidence interval for the shift.
    pub low: f64,
    /// Upper end of the confidence interval for the shift.
    pub high: f64,
    /// Coverage the interval really has under the null distribution of U
    /// (continuous data). At least the requested confidence, except when the
    /// samples are too small to reach it: then the interval is the widest one
    /// (smallest to largest difference) and this is its coverage,
    /// `1 - 2 / C(n_base + n_head, n_base)` (e.g. 0.9 for 3 vs 3).
    pub achieved_confidence: f64,
}

/// Hodges–Lehmann estimate of the shift `head − base` and its
/// distribution-free confidence interval (Moses; Bauer 1972), the interval
/// that inverts the Mann–Whitney test (as R's
/// `wilcox.test(head, base, conf.int = TRUE)`).
///
/// With `N = base.len() * head.len()` and `D(1) <= ... <= D(N)` the sorted
/// pairwise differences `head[j] - base[i]`:
/// * `estimate` is the median of the `D`s (mean of the two middle ones when
///   `N` is even);
/// * the interval is `[D(k), D(N + 1 - k)]`, whose coverage for continuous
///   data is `1 - 2 P(U <= k - 1)` with U the null Mann–Whitney statistic;
/// * `k = 1 + max { c >= 0 : P(U <= c) <= (1 - confidence) / 2 }`, so the
///   coverage is the smallest one at least `confidence`. If even
///   `P(U <= 0) = 1 / C(n_base + n_head, n_base)` exceeds
///   `(1 - confidence) / 2`, the sample is too small: `k = 1` (the widest
///   interval, smallest to largest difference) and `achieved_confidence`
///   reports its real coverage, which is below `confidence`.
/// * `P(U <= c)` is exact when `N <= EXACT_MAX_PAIRS` (ties or not). For
///   larger samples it is the normal approximation with continuity
///   correction and without tie correction,
///   `P(U <= c) ≈ Φ((c + 0.5 − N/2) / σ)`, `σ² = N (n_base + n_head + 1) / 12`,
///   so `k = max(1, floor(N/2 − z σ − 0.5) + 1)` with `z = Φ⁻¹((1 + confidence) / 2)`,
///   and `achieved_confidence = 1 − 2 Φ((k − 0.5 − N/2) / σ)`.
///
/// **Ties** change nothing in this rule, on purpose. The true shift `δ` lies
/// below `D(k)` only if at most `k − 1` pairs have `head[j] − δ <= base[i]`
/// (ties counted in full); breaking the ties of `(base, head − δ)` at random
/// gives a continuous arrangement with at most that many such pairs, whose U
/// has exactly the continuous null distribution, so `P(δ < D(k)) <= P(U <= k − 1)`,
/// and the same for the upper end. The closed interval therefore covers with
/// probability *at least* `achieved_confidence` for discrete (tied) data
/// too: it is conservative, never anti-conservative. (Inverting the
/// tie-conditional exact test instead would need the tie pattern of
/// `head − δ` for every candidate `δ`, which changes with `δ`; the result
/// would be at most one order statistic narrower at each end.) The test
/// `hl_coverage_with_ties_is_conservative` checks this by exhaustive
/// enumeration of a three-valued distribution.
///
/// The differences are never materialised: the order statistics are found by
/// bisection over the values with an `O(n_base + n_head)` count per step, so
/// memory is linear and time `O((n_base + n_head) · 64)` after sorting.
///
/// Returns `None` if either sample is empty, any value is not finite (NaN or
/// infinite), or `confidence` is not strictly between 0 and 1.
pub fn hodges_lehmann(base: &[f64], head: &[f64], confidence: f64) -> Option<ShiftEstimate> {
    shift_estimates(base, head, &[confidence])?.pop()
}

/// [`hodges_lehmann`] at several confidence levels at once (one estimate,
/// one interval per level, in the order given), sharing the sorting and the
/// order statistics. `None` under the same conditions, for any level.
pub fn shift_estimates(
    base: &[f64],
    head: &[f64],
    confidences: &[f64],
) -> Option<Vec<ShiftEstimate>> {
    if base.is_empty()
        || head.is_empty()
        || !confidences.iter().all(|c| *c > 0.0 && *c < 1.0)
        || !base.iter().chain(head).all(|x| x.is_finite())
    {
        return None;
    }
    let mut base_sorted = base.to_vec();
    base_sorted.sort_by(f64::total_cmp);
    let mut head_sorted = head.to_vec();
    head_sorted.sort_by(f64::total_cmp);
    let diffs = Differences::new(&base_sorted, &head_sorted);

    let n_pairs = base.len() as u128 * head.len() as u128;
    let estimate = if n_pairs % 2 == 1 {
        diffs.kth(n_pairs.div_ceil(2))
    } else {
        midpoint(diffs.kth(n_pairs / 2), diffs.kth(n_pairs / 2 + 1))
    };
    Some(
        confidences
            .iter()
            .map(|&confidence| {
                let (k, achieved_confidence) = interval_rank(base.len(), head.len(), confidence);
                ShiftEstimate {
                    estimate,
                    low: diffs.kth(k),
                    high: diffs.kth(n_pairs + 1 - k),
                    achieved_confidence,
                }
            })
            .collect(),
    )
}

/// Estimate of the ratio `head / base` with its confidence interval; see
/// [`ratio_estimate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioEstimate {
    /// Estimated ratio head / base (1.0 = no change, 1.1 = head 10% larger).
    pub estimate: f64,
    /// Lower end of the confidence interval for the ratio.
    pub low: f64,
    /// Upper end of the confidence interval for the ratio.
    pub high: f64,
    /// Real coverage of the interval; same meaning as
    /// [`ShiftEstimate::achieved_confidence`].
    pub achieved_confidence: f64,
}

/// Ratio `head / base` estimated as `exp` of the Hodges–Lehmann shift of
/// `ln(head) − ln(base)` (the median of all pairwise ratios `head[j] / base[i]`,
/// up to rounding), with the interval of [`hodges_lehmann`] on the log scale
/// exponentiated likewise.
///
/// Returns `None` if either sample is empty, any value is `<= 0`, NaN or
/// infinite (logarithms would be undefined), or `confidence` is not strictly
/// between 0 and 1.
pub fn ratio_estimate(base: &[f64], head: &[f64], confidence: f64) -> Option<RatioEstimate> {
    ratio_estimates(base, head, &[confidence])?.pop()
}

/// [`ratio_estimate`] at several confidence levels at once, in the order
/// given (see [`shift_estimates`]).
pub fn ratio_estimates(
    base: &[f64],
    head: &[f64],
    confidences: &[f64],
) -> Option<Vec<RatioEstimate>> {
    let positive = |x: &f64| x.is_finite() && *x > 0.0;
    if !base.iter().chain(head).all(positive) {
        return None;
    }
    let ln_base: Vec<f64> = base.iter().map(|x| x.ln()).collect();
    let ln_head: Vec<f64> = head.iter().map(|x| x.ln()).collect();
    let shifts = shift_estimates(&ln_base, &ln_head, confidences)?;
    Some(
        shifts
            .iter()
            .map(|shift| RatioEstimate {
                estimate: shift.estimate.exp(),
                low: shift.low.exp(),
                high: shift.high.exp(),
                achieved_confidence: shift.achieved_confidence,
            })
            .collect(),
    )
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the input order.
///
/// Step-up procedure: with the `m` p-values sorted ascending,
/// `q(i) = min_{j >= i} p(j) · m / j`, capped at 1; as
/// `scipy.stats.false_discovery_control(p, method='bh')` and R's
/// `p.adjust(p, "BH")`. Rejecting every hypothesis with `q <= α` controls the
/// false discovery rate at `α`.
///
/// NaN entries are treated as missing, as R does: they stay NaN in the output
/// and are not counted in `m`. Values outside `[0, 1]` are clamped into it
/// first. An empty input gives an empty output.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let mut out = vec![f64::NAN; p_values.len()];
    let mut order: Vec<usize> = (0..p_values.len())
        .filter(|&i| !p_values[i].is_nan())
        .collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let m = order.len() as f64;
    let mut running_min = 1.0_f64;
    for (rank0, &i) in order.iter().enumerate().rev() {
        let p = p_values[i].clamp(0.0, 1.0);
        let q = p * m / (rank0 + 1) as f64;
        running_min = running_min.min(q);
        out[i] = running_min;
    }
    out
}

/// Median of `xs` (mean of the two middle values for an even count, as
/// `numpy.median`). Returns `None` if `xs` is empty or contains NaN.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|x| x.is_nan()) {
        return None;
    }
    // Selection, not a sort: the gate takes medians of every function and
    // run at every look. Same values as sorting (same total order).
    let mut values = xs.to_vec();
    let n = values.len();
    let (lower, &mut upper_middle, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return Some(upper_middle);
    }
    let lower_middle = lower.iter().copied().max_by(f64::total_cmp)?;
    Some(midpoint(lower_middle, upper_middle))
}

/// Arithmetic mean of `xs`. Returns `None` if `xs` is empty or contains NaN
/// (the result may still be infinite, or NaN if both `+inf` and `-inf` occur).
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|x| x.is_nan()) {
        return None;
    }
    Some(xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Quantile `q` (0 = minimum, 0.5 = median, 1 = maximum) of `xs` with linear
/// interpolation between order statistics, as `numpy.quantile(xs, q)` (its
/// default `method='linear'`): position `h = (n − 1) q` in the sorted values.
/// Returns `None` if `xs` is empty, contains NaN, or `q` is not in `[0, 1]`.
pub fn quantile(xs: &[f64], q: f64) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let sorted = sorted_without_nan(xs)?;
    let h = (sorted.len() - 1) as f64 * q;
    let lo = (h.floor() as usize).min(sorted.len() - 1);
    let hi = (lo + 1).min(sorted.len() - 1);
    let t = h - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    if t == 0.0 {
        return Some(a);
    }
    // numpy's `_lerp`: interpolate from the nearer end for accuracy.
    let diff = b - a;
    Some(if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    })
}

/// Smallest two-sided p-value the exact Mann–Whitney test can give with
/// `n1` runs against `n2` runs: `2 / C(n1 + n2, n1)`, capped at 1 (the p-value
/// of two completely separated samples). If this is above the significance
/// level, no result of the benchmark can be significant: e.g. 3 vs 3 gives
/// 0.1, 4 vs 4 gives 0.0286, 5 vs 5 gives 0.00794. Returns 1 when either
/// count is 0. (With ties, or with the normal approximation used for large
/// samples, p-values are no smaller than this in practice.)
pub fn min_p_two_sided(n1: usize, n2: usize) -> f64 {
    let (m, n) = (n1.min(n2), n1.max(n2));
    // C(n + m, m) = prod_{i=1..m} (n + i) / i; every factor is >= 2 because
    // n >= m >= i, so the loop overflows to infinity within ~1030 steps.
    let mut binom = 1.0_f64;
    for i in 1..=m {
        binom *= (n as f64 + i as f64) / i as f64;
        if binom.is_infinite() {
            return 0.0;
        }
    }
    (2.0 / binom).min(1.0)
}

/// Standard normal quantile `Φ⁻¹(p)` (e.g. 1.959964 for 0.975). Returns
/// `-inf` for 0, `+inf` for 1 and NaN outside `[0, 1]`.
pub fn normal_quantile(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    -std::f64::consts::SQRT_2 * erfc_inv(2.0 * p)
}

/// Standard normal upper tail `P(Z > z) = 1 − Φ(z)`, accurate far into the
/// tail (no cancellation). NaN for NaN.
pub fn normal_upper_tail(z: f64) -> f64 {
    normal_sf(z)
}

// ---------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------

/// Rank information of the pooled sample.
struct Ranks {
    /// Sum of the (average) ranks of the head values, ranks starting at 1.
    rank_sum_head: f64,
    /// Twice that sum, exactly (twice a midrank is an integer).
    doubled_rank_sum_head: u128,
    /// Sum over groups of tied values of `t³ − t`.
    tie_term: f64,
    /// Whether any value occurs more than once.
    has_ties: bool,
    /// Sizes of the groups of equal values in ascending order of the value
    /// (1 for a value that occurs once); they sum to `n_base + n_head`.
    tie_groups: Vec<usize>,
}

/// Ranks the pooled sample (no NaN allowed), giving tied values their
/// average rank.
fn rank_sum_head(base: &[f64], head: &[f64]) -> Ranks {
    let mut pooled: Vec<(f64, bool)> = base
        .iter()
        .map(|&x| (x, false))
        .chain(head.iter().map(|&x| (x, true)))
        .collect();
    // total_cmp puts -0.0 right before +0.0; they compare equal below, so
    // they form one tie group.
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut ranks = Ranks {
        rank_sum_head: 0.0,
        doubled_rank_sum_head: 0,
        tie_term: 0.0,
        has_ties: false,
        tie_groups: Vec::new(),
    };
    let mut start = 0;
    while start < pooled.len() {
        let mut end = start + 1;
        while end < pooled.len() && pooled[end].0 == pooled[start].0 {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their average:
        let avg_rank = (start + 1 + end) as f64 / 2.0;
        let heads = pooled[start..end].iter().filter(|p| p.1).count();
        ranks.rank_sum_head += avg_rank * heads as f64;
        ranks.doubled_rank_sum_head += (start + 1 + end) as u128 * heads as u128;
        let t = (end - start) as f64;
        if end - start > 1 {
            ranks.has_ties = true;
            ranks.tie_term += t * t * t - t;
        }
        ranks.tie_groups.push(end - start);
        start = end;
    }
    ranks
}

/// Exact null distribution of `2U` (U of head, midranks) given the sizes of
/// the tie groups: every labelling of the pooled values as `n1` base and `n2`
/// head values is equally likely, and `cumulative[d]` counts those with
/// `2U <= d`, `d` in `0..=2 n1 n2`.
///
/// Computed as a generalised hypergeometric count: a group of `t` tied values
/// with doubled midrank `r2` contributes `k · r2` to twice the rank sum of the
/// smaller sample when `k` of its values belong to it, in `C(t, k)` ways.
/// Taking the group's values one at a time (each in the smaller sample or
/// not) multiplies out to exactly those `C(t, k)`, so the dynamic programme
/// runs over single values: `ways[h][s]` = number of ways for the values seen
/// so far to hold `h` values of the smaller sample with doubled rank sum
/// `s + h (h + 1)` (the offset makes every index non-negative: the `h`
/// smallest midranks sum to at least `h (h + 1) / 2`, and any `h` of them to
/// at most `h (2N − h + 1) / 2`, so `s` is in `0..=2 n1 n2`).
struct TiedUDistribution {
    /// `cumulative[d]` = number of labellings with `2U <= d`.
    cumulative: Vec<u128>,
    /// `C(n1 + n2, n1)`.
    total: u128,
}

impl TiedUDistribution {
    /// Computes the distribution, or `None` if a size is 0, the groups do not
    /// sum to `n1 + n2`, or a count overflows 128 bits (never for
    /// `n1 * n2 <= EXACT_MAX_PAIRS`: every count is at most `C(n1 + n2, n1)`).
    fn new(tie_groups: &[usize], n1: usize, n2: usize) -> Option<Self> {
        let n = n1.checked_add(n2)?;
        let m = n1.min(n2);
        if m == 0 || tie_groups.iter().sum::<usize>() != n {
            return None;
        }
        let width = 2 * n1.checked_mul(n2)? + 1;
        // ways[h * width + s]; `populated[h]` bounds the non-zero indices of
        // row h so that each step only touches where the counts are.
        let mut ways: Vec<u128> = vec![0; (m + 1).checked_mul(width)?];
        let mut populated: Vec<Option<(usize, usize)>> = vec![None; m + 1];
        ways[0] = 1;
        populated[0] = Some((0, 0));
        let mut position = 0; // values seen so far
        for &t in tie_groups {
            let doubled_midrank = 2 * position + t + 1; // (position+1 + position+t)
            for _ in 0..t {
                position += 1;
                // Descending h: row h reads the old row h - 1 (0/1 knapsack).
                for h in (1..=m.min(position)).rev() {
                    let Some((lo, hi)) = populated[h - 1] else {
                        continue;
                    };
                    // Old index j maps to new index i = j + r2 - 2h.
                    let (lo, hi) = (lo + doubled_midrank, hi + doubled_midrank);
                    if hi < 2 * h {
                        continue;
                    }
                    let lo = lo.saturating_sub(2 * h);
                    let hi = (hi - 2 * h).min(width - 1);
                    if lo > hi {
                        continue;
                    }
                    // Old index of new index lo: lo + 2h - r2, >= 0 because
                    // lo >= (old lo) + r2 - 2h.
                    let old_lo = lo + 2 * h - doubled_midrank;
                    let (old_rows, new_rows) = ways.split_at_mut(h * width);
                    let old = &old_rows[(h - 1) * width + old_lo..];
                    for (to, &add) in new_rows[lo..=hi].iter_mut().zip(old) {
                        if add != 0 {
                            *to = to.checked_add(add)?;
                        }
                    }
                    populated[h] = Some(match populated[h] {
                        Some((a, b)) => (a.min(lo), b.max(hi)),
                        None => (lo, hi),
                    });
                }
            }
        }
        let chosen = &ways[m * width..(m + 1) * width];
        // `chosen[s]` counts 2U of the smaller sample = s. If that is base,
        // 2U of head = 2 n1 n2 - s.
        let head_is_chosen = n2 <= n1;
        let mut cumulative = Vec::with_capacity(width);
        let mut acc: u128 = 0;
        for d in 0..width {
            let s = if head_is_chosen { d } else { width - 1 - d };
            acc = acc.checked_add(chosen[s])?;
            cumulative.push(acc);
        }
        Some(TiedUDistribution {
            cumulative,
            total: acc,
        })
    }

    /// `P(2U <= d)`.
    fn cdf(&self, d: usize) -> f64 {
        let below = self.cumulative[d.min(self.cumulative.len() - 1)];
        below as f64 / self.total as f64
    }

    /// `P(2U >= d)`.
    fn sf(&self, d: usize) -> f64 {
        if d == 0 {
            return 1.0;
        }
        let below = self.cumulative[(d - 1).min(self.cumulative.len() - 1)];
        (self.total - below) as f64 / self.total as f64
    }
}

/// Distributions without ties kept per thread: a check tests every function
/// with the same sample sizes, look after look.
const U_CACHE_ENTRIES: usize = 16;

/// Cached distributions keyed by (smaller size, larger size), oldest first.
type UCache = Vec<((usize, usize), Rc<UDistribution>)>;

thread_local! {
    static U_CACHE: RefCell<UCache> =
        const { RefCell::new(Vec::new()) };
}

/// Exact null distribution of the Mann–Whitney U statistic for sample sizes
/// `n1`, `n2` (continuous data): `counts[u]` is the number of the
/// `C(n1 + n2, n1)` equally likely arrangements with `U = u`.
struct UDistribution {
    /// `cumulative[u]` = number of arrangements with `U <= u`, `u` in `0..=n1*n2`.
    cumulative: Vec<u128>,
    /// `C(n1 + n2, n1)`.
    total: u128,
}

impl UDistribution {
    /// Computes the distribution, or `None` if a count overflows 128 bits
    /// (never for `n1 * n2 <= EXACT_MAX_PAIRS`) or a size is 0.
    ///
    /// The generating function of the counts is the Gaussian binomial
    /// coefficient `[m + n choose m]_q = prod_{i=1..m} (1 − q^(n+i)) / (1 − q^i)`
    /// (m = min size, n = max size). After step `i` the polynomial is exactly
    /// `[n + i choose i]_q` (non-negative integer coefficients, degree `i n`),
    /// so multiplying by `1 − q^(n+i)` and then dividing by `1 − q^i` (a
    /// strided prefix sum) stays exact in integers.
    fn new(n1: usize, n2: usize) -> Option<Self> {
        let (m, n) = (n1.min(n2), n1.max(n2));
        if m == 0 {
            return None;
        }
        let max_u = m.checked_mul(n)?;
        let mut c: Vec<i128> = vec![0; max_u.checked_add(1)?];
        c[0] = 1;
        for i in 1..=m {
            let deg = i * n;
            let shift = n + i;
            // Multiply by (1 - q^shift), keeping terms up to `deg` only (the
            // quotient's coefficients up to `deg` depend only on those).
            for k in (shift..=deg).rev() {
                c[k] = c[k].checked_sub(c[k - shift])?;
            }
            // Divide by (1 - q^i): c[k] += c[k - i], ascending.
            for k in i..=deg {
                c[k] = c[k].checked_add(c[k - i])?;
            }
        }
        let mut cumulative = Vec::with_capacity(c.len());
        let mut acc: u128 = 0;
        for &x in &c {
            acc = acc.checked_add(u128::try_from(x).ok()?)?;
            cumulative.push(acc);
        }
        Some(UDistribution {
            cumulative,
            total: acc,
        })
    }

    /// [`UDistribution::new`] through the per-thread cache (the sizes are
    /// symmetric: 5 vs 30 and 30 vs 5 share an entry). The cache holds at
    /// most [`U_CACHE_ENTRIES`] distributions (≤ 40 KB each within
    /// [`EXACT_MAX_PAIRS`]), dropping the oldest.
    fn cached(n1: usize, n2: usize) -> Option<Rc<Self>> {
        let key = (n1.min(n2), n1.max(n2));
        let hit = U_CACHE.with(|c| {
            c.borrow()
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, d)| Rc::clone(d))
        });
        if let Some(d) = hit {
            return Some(d);
        }
        let d = Rc::new(UDistribution::new(n1, n2)?);
        U_CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= U_CACHE_ENTRIES {
                c.remove(0);
            }
            c.push((key, Rc::clone(&d)));
        });
        Some(d)
    }

    /// Largest value of U.
    fn max_u(&self) -> usize {
        self.cumulative.len() - 1
    }

    /// `P(U <= u)`.
    fn cdf(&self, u: usize) -> f64 {
        let below = self.cumulative[u.min(self.max_u())];
        below as f64 / self.total as f64
    }

    /// `P(U >= u)`.
    fn sf(&self, u: usize) -> f64 {
        if u == 0 {
            return 1.0;
        }
        let below = self.cumulative[(u - 1).min(self.max_u())];
        (self.total - below) as f64 / self.total as f64
    }
}

/// Rank `k` (1-based) of the lower interval endpoint among the sorted pairwise
/// differences, and the coverage of `[D(k), D(N + 1 − k)]`; see
/// [`hodges_lehmann`] for the rule. `confidence` is in (0, 1) and both sizes
/// are non-zero.
fn interval_rank(n1: usize, n2: usize, confidence: f64) -> (u128, f64) {
    let alpha_half = (1.0 - confidence) / 2.0;
    let n_pairs = n1 as u128 * n2 as u128;
    let max_k = n_pairs.div_ceil(2);
    let small = n1.checked_mul(n2).is_some_and(|p| p <= EXACT_MAX_PAIRS);
    if small {
        if let Some(dist) = UDistribution::cached(n1, n2) {
            // cdf(c) >= 1/2 for c >= N/2 by symmetry, so this stops there.
            let mut k: usize = 1;
            while k <= dist.max_u() && dist.cdf(k - 1) <= alpha_half {
                k += 1;
            }
            // Now k - 1 = 1 + max{c : cdf(c) <= alpha/2}, or k = 1 if none.
            let k = if k > 1 { k - 1 } else { 1 };
            let k = (k as u128).min(max_k);
            let achieved = 1.0 - 2.0 * dist.cdf(k as usize - 1);
            return (k, achieved.clamp(0.0, 1.0));
        }
    }
    let n_pairs_f = n1 as f64 * n2 as f64;
    let mu = n_pairs_f / 2.0;
    let sigma = (n_pairs_f * ((n1 + n2) as f64 + 1.0) / 12.0).sqrt();
    let z = std::f64::consts::SQRT_2 * erfc_inv(2.0 * alpha_half);
    let c = (mu - z * sigma - 0.5).floor();
    let k = if c >= 0.0 { c as u128 + 1 } else { 1 };
    let k = k.clamp(1, max_k);
    let achieved = 1.0 - 2.0 * normal_cdf((k as f64 - 0.5 - mu) / sigma);
    (k, achieved.clamp(0.0, 1.0))
}

/// Order statistics of the pairwise differences: materialised and sorted
/// when there are at most [`EXACT_MAX_PAIRS`] of them (tens of kilobytes; a
/// check asks for several order statistics of each pair of samples, and one
/// sort is cheaper than a bisection per statistic), implicit beyond (memory
/// stays linear). Both give exactly the same values: the differences as
/// computed in floating point.
enum Differences<'a> {
    Sorted(Vec<f64>),
    Implicit(SortedDifferences<'a>),
}

impl<'a> Differences<'a> {
    /// Both slices sorted ascending, non-empty, finite.
    fn new(base: &'a [f64], head: &'a [f64]) -> Self {
        let small = base
            .len()
            .checked_mul(head.len())
            .is_some_and(|p| p <= EXACT_MAX_PAIRS);
        if small {
            Differences::Sorted(merged_differences(base, head))
        } else {
            Differences::Implicit(SortedDifferences { base, head })
        }
    }

    /// The `k`-th smallest difference, `k` in `1..=n1*n2` (clamped into it).
    fn kth(&self, k: u128) -> f64 {
        match self {
            Differences::Sorted(all) => {
                let i = usize::try_from(k.clamp(1, all.len() as u128)).unwrap_or(1) - 1;
                // `+ 0.0` turns a -0.0 into +0.0, as the bisection does.
                all.get(i).map_or(f64::NAN, |d| d + 0.0)
            }
            Differences::Implicit(d) => d.kth(k),
        }
    }
}

/// All differences `head[j] - base[i]` in ascending order (both slices
/// sorted ascending, finite). Each head value gives a run that is already
/// sorted (`head[j] - base[i]` is non-increasing in `i`, rounding being
/// monotone), so the runs are merged pairwise, bottom up: `N log2(n_head)`
/// steps of plain comparisons, several times faster than a general sort
/// (which matters for the simulation's thousands of checks in debug builds).
/// Signed zeros may come out in either order; callers normalise them.
fn merged_differences(base: &[f64], head: &[f64]) -> Vec<f64> {
    let n = base.len() * head.len();
    let mut src: Vec<f64> = Vec::with_capacity(n);
    for h in head {
        src.extend(base.iter().rev().map(|b| h - b));
    }
    let mut dst = vec![0.0; n];
    let mut width = base.len().max(1);
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (left, right) = (&src[start..mid], &src[mid..end]);
            let out = &mut dst[start..end];
            let (mut i, mut j) = (0, 0);
            for slot in out.iter_mut() {
                let take_left = j >= right.len() || (i < left.len() && left[i] <= right[j]);
                if take_left {
                    *slot = left[i];
                    i += 1;
                } else {
                    *slot = right[j];
                    j += 1;
                }
            }
            start = end;
        }
        std::mem::swap(&mut src, &mut dst);
        width *= 2;
    }
    src
}

/// Order statistics of the pairwise differences `head[j] - base[i]` (both
/// slices sorted ascending, non-empty, finite), without materialising them.
struct SortedDifferences<'a> {
    base: &'a [f64],
    head: &'a [f64],
}

impl SortedDifferences<'_> {
    /// Number of differences `<= t`. For a fixed `head[j]`, the rounded
    /// difference `head[j] - base[i]` is non-increasing in `i` and, for a
    /// fixed `i`, non-decreasing in `j` (rounding is monotone), so a single
    /// pointer sweep counts them.
    fn count_le(&self, t: f64) -> u128 {
        let n1 = self.base.len();
        let mut first = 0; // first base index with head[j] - base[i] <= t
        let mut count: u128 = 0;
        for &h in self.head {
            while first < n1 && h - self.base[first] > t {
                first += 1;
            }
            count += (n1 - first) as u128;
        }
        count
    }

    /// The `k`-th smallest difference, `k` in `1..=n1*n2` (clamped into it).
    ///
    /// Bisection over the totally ordered bit patterns of `f64` between the
    /// smallest and largest difference: the smallest `t` with
    /// `count_le(t) >= k` is exactly the `k`-th smallest difference (as
    /// computed in floating point). At most 64 steps.
    fn kth(&self, k: u128) -> f64 {
        let (Some(&b_min), Some(&b_max), Some(&h_min), Some(&h_max)) = (
            self.base.first(),
            self.base.last(),
            self.head.first(),
            self.head.last(),
        ) else {
            return f64::NAN; // unreachable: callers pass non-empty slices
        };
        let n_pairs = self.base.len() as u128 * self.head.len() as u128;
        let k = k.clamp(1, n_pairs);
        let mut lo = order_key(h_min - b_max);
        let mut hi = order_key(h_max - b_min);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.count_le(from_order_key(mid)) >= k {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        // `+ 0.0` turns a -0.0 into +0.0.
        from_order_key(lo) + 0.0
    }
}

/// Maps an `f64` to a `u64` whose unsigned order is the total order of the
/// floats (`-inf < ... < -0.0 < +0.0 < ... < +inf`, NaNs outside).
fn order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Inverse of [`order_key`].
fn from_order_key(key: u64) -> f64 {
    if key >> 63 == 1 {
        f64::from_bits(key & !(1 << 63))
    } else {
        f64::from_bits(!key)
    }
}

/// Copy of `xs` sorted ascending, or `None` if empty or containing NaN.
fn sorted_without_nan(xs: &[f64]) -> Option<Vec<f64>> {
    if xs.is_empty() || xs.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted)
}

/// Mean of two values, without overflowing to infinity for huge finite ones.
fn midpoint(a: f64, b: f64) -> f64 {
    let m = (a + b) / 2.0;
    if m.is_finite() {
        m
    } else {
        a / 2.0 + b / 2.0
    }
}

/// Standard normal survival function `P(Z > z)`.
fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Standard normal distribution function `P(Z <= z)`.
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    //! Reference values come from scipy 1.17.1 / numpy 2.4.6; each test
    //! quotes the exact call. The script that printed them is reproduced in
    //! the comments: `mwu(b, h, m)` means
    //! `scipy.stats.mannwhitneyu(h, b, alternative=alt, method=m)` for
    //! `alt` in `'two-sided'`, `'greater'`, `'less'` (note: head first, so
    //! `'greater'` is "head larger"), `.statistic` for U.
    use super::*;

    /// Asserts `actual` is within 1e-6 relative of `expected`.
    #[track_caller]
    fn close(actual: f64, expected: f64) {
        let tol = 1e-6 * expected.abs().max(1e-300);
        assert!(
            actual == expected || (actual - expected).abs() <= tol,
            "actual {actual} vs expected {expected}"
        );
    }

    /// Checks a Mann–Whitney result against (U, two-sided, greater, less, exact).
    #[track_caller]
    fn check_mw(base: &[f64], head: &[f64], expected: (f64, f64, f64, f64, bool)) {
        let r = mann_whitney(base, head).expect("non-empty input");
        let (u, two, greater, less, exact) = expected;
        assert_eq!(r.exact, exact, "{r:?}");
        close(r.u_head, u);
        close(r.p_two_sided, two);
        close(r.p_greater, greater);
        close(r.p_less, less);
    }

    const B5: [f64; 5] = [0.957, 1.016, 1.063, 0.969, 1.046];
    const H5: [f64; 5] = [0.984, 1.014, 1.012, 0.93, 1.099];
    const B7: [f64; 7] = [10.305, 8.96, 10.75, 10.941, 8.049, 8.698, 10.128];
    const H9: [f64; 9] = [
        8.884, 9.183, 8.347, 10.079, 9.978, 9.266, 10.327, 9.668, 8.341,
    ];
    const B10: [f64; 10] = [
        5.184, 4.521, 5.439, 4.975, 4.908, 4.66, 5.611, 4.923, 4.786, 4.824,
    ];
    const H10: [f64; 10] = [
        5.666, 5.583, 5.606, 5.615, 6.471, 5.197, 5.144, 4.993, 5.708, 5.964,
    ];
    const B20: [f64; 20] = [
        99.658, 97.48, 97.527, 101.952, 102.23, 101.629, 98.003, 100.696, 100.35, 100.656, 102.614,
        100.671, 102.037, 100.203, 100.867, 101.894, 95.629, 99.041, 98.589, 98.083,
    ];
    const H20: [f64; 20] = [
        101.175, 106.485, 99.403, 104.905, 96.951, 100.995, 102.488, 103.759, 104.134, 104.38,
        100.954, 100.613, 104.574, 101.426, 98.173, 98.6, 99.242, 103.491, 102.427, 104.071,
    ];
    /// B7 and H9 rounded to integers (many ties): [round(x) for x in B7/H9].
    const T7: [f64; 7] = [10.0, 9.0, 11.0, 11.0, 8.0, 9.0, 10.0];
    const T9: [f64; 9] = [9.0, 9.0, 8.0, 10.0, 10.0, 9.0, 10.0, 10.0, 8.0];
    /// B10 and H10 rounded to one decimal: [round(x, 1) for x in B10/H10].
    const T10B: [f64; 10] = [5.2, 4.5, 5.4, 5.0, 4.9, 4.7, 5.6, 4.9, 4.8, 4.8];
    const T10H: [f64; 10] = [5.7, 5.6, 5.6, 5.6, 6.5, 5.2, 5.1, 5.0, 5.7, 6.0];

    fn range(n: usize, offset: f64) -> Vec<f64> {
        (0..n).map(|i| i as f64 + offset).collect()
    }

    // ----------------------------------------------------------------------
    // Mann–Whitney, exact
    // ----------------------------------------------------------------------

    #[test]
    fn mw_3v3_separated_both_directions() {
        // mwu([1,2,3], [4,5,6], 'exact') -> U=9.0, 0.1, 0.05, 1.0
        check_mw(
            &[1.0, 2.0, 3.0],
            &[4.0, 5.0, 6.0],
            (9.0, 0.1, 0.05, 1.0, true),
        );
        // mwu([4,5,6], [1,2,3], 'exact') -> U=0.0, 0.1, 1.0, 0.05
        check_mw(
            &[4.0, 5.0, 6.0],
            &[1.0, 2.0, 3.0],
            (0.0, 0.1, 1.0, 0.05, true),
        );
    }

    #[test]
    fn mw_5v5_separated_is_2_over_252() {
        // mwu([10.1,10.3,10.2,10.4,10.0], [11.0,11.2,11.1,11.3,11.4], 'exact')
        //   -> U=25.0, 0.007936507936507936, 0.003968253968253968, 1.0
        let base = [10.1, 10.3, 10.2, 10.4, 10.0];
        let head = [11.0, 11.2, 11.1, 11.3, 11.4];
        check_mw(&base, &head, (25.0, 2.0 / 252.0, 1.0 / 252.0, 1.0, true));
        close(
            mann_whitney(&base, &head).unwrap().p_two_sided,
            0.007936507936507936,
        );
    }

    #[test]
    fn mw_5v5_overlapping() {
        // mwu(B5, H5, 'exact') -> U=11.0, 0.8412698412698413, 0.6547619047619047, 0.42063492063492064
        check_mw(
            &B5,
            &H5,
            (
                11.0,
                0.8412698412698413,
                0.6547619047619047,
                0.42063492063492064,
                true,
            ),
        );
    }

    #[test]
    fn mw_7v9_head_lower() {
        // mwu(B7, H9, 'exact') -> U=24.0, 0.46975524475524477, 0.7960664335664336, 0.23487762237762239
        check_mw(
            &B7,
            &H9,
            (
                24.0,
                0.46975524475524477,
                0.7960664335664336,
                0.23487762237762239,
                true,
            ),
        );
    }

    #[test]
    fn mw_10v10_exact() {
        // mwu(B10, H10, 'exact') -> U=90.0, 0.0015046872632011952, 0.0007523436316005976, 0.9994749832211133
        // (scipy's method='auto' would use the normal approximation here:
        //  'asymptotic' gives two-sided 0.0028272720911168077.)
        check_mw(
            &B10,
            &H10,
            (
                90.0,
                0.0015046872632011952,
                0.0007523436316005976,
                0.9994749832211133,
                true,
            ),
        );
    }

    #[test]
    fn mw_20v20_exact_both_directions() {
        // mwu(B20, H20, 'exact') -> U=290.0, 0.014297272922798868, 0.007148636461399434, 0.9934028085670007
        check_mw(
            &B20,
            &H20,
            (
                290.0,
                0.014297272922798868,
                0.007148636461399434,
                0.9934028085670007,
                true,
            ),
        );
        // mwu(H20, B20, 'exact') -> U=110.0, 0.014297272922798868, 0.9934028085670007, 0.007148636461399434
        check_mw(
            &H20,
            &B20,
            (
                110.0,
                0.014297272922798868,
                0.9934028085670007,
                0.007148636461399434,
                true,
            ),
        );
    }

    #[test]
    fn mw_unbalanced_and_largest_exact() {
        // mwu([1.0], [2.0], 'exact') -> U=1.0, 1.0, 0.5, 1.0
        check_mw(&[1.0], &[2.0], (1.0, 1.0, 0.5, 1.0, true));
        // mwu([0.5,10.5,20.5], [float(i) for i in range(40)], 'exact')
        //   -> U=87.0, 0.2182967344623612, 0.1091483672311806, 0.8996029495178673
        check_mw(
            &[0.5, 10.5, 20.5],
            &range(40, 0.0),
            (
                87.0,
                0.2182967344623612,
                0.1091483672311806,
                0.8996029495178673,
                true,
            ),
        );
        // mwu([float(i) for i in range(50)], [i+10.5 for i in range(50)], 'exact')
        //   -> U=1720.0, 0.001055016471113667, 0.0005275082355568335, 0.9994858158885853
        check_mw(
            &range(50, 0.0),
            &range(50, 10.5),
            (
                1720.0,
                0.001055016471113667,
                0.0005275082355568335,
                0.9994858158885853,
                true,
            ),
        );
    }

    // ----------------------------------------------------------------------
    // Mann–Whitney, normal approximation
    // ----------------------------------------------------------------------

    #[test]
    fn mw_large_sample_is_asymptotic() {
        // 60 * 60 = 3600 > EXACT_MAX_PAIRS.
        // mwu([float(i) for i in range(60)], [i+7.5 for i in range(60)], 'asymptotic')
        //   -> U=2222.0, 0.02694585619564296, 0.01347292809782148, 0.98670723136073
        check_mw(
            &range(60, 0.0),
            &range(60, 7.5),
            (
                2222.0,
                0.02694585619564296,
                0.01347292809782148,
                0.98670723136073,
                false,
            ),
        );
        // mwu([i+7.5 for i in range(60)], [float(i) for i in range(60)], 'asymptotic')
        //   -> U=1378.0, 0.02694585619564296, 0.98670723136073, 0.01347292809782148
        check_mw(
            &range(60, 7.5),
            &range(60, 0.0),
            (
                1378.0,
                0.02694585619564296,
                0.98670723136073,
                0.01347292809782148,
                false,
            ),
        );
    }

    /// mwu([1,2,3,4], [4,5,6,7], 'asymptotic') -> U=15.5, 0.042066412206780826,
    /// 0.021033206103390413, 0.9899177134888322 (the issue's 0.042).
    const ASYMPTOTIC_4V4: (f64, f64, f64, f64) = (
        15.5,
        0.042066412206780826,
        0.021033206103390413,
        0.9899177134888322,
    );

    /// The normal approximation alone (what `mann_whitney` uses beyond
    /// [`EXACT_MAX_PAIRS`]), to check it against scipy on small tied samples.
    #[track_caller]
    fn check_asymptotic(base: &[f64], head: &[f64], expected: (f64, f64, f64, f64)) {
        let r = normal_approximation(&rank_sum_head(base, head), base.len(), head.len());
        let (u, two, greater, less) = expected;
        assert!(!r.exact);
        close(r.u_head, u);
        close(r.p_two_sided, two);
        close(r.p_greater, greater);
        close(r.p_less, less);
    }

    #[test]
    fn normal_approximation_with_ties_matches_scipy() {
        // mwu([1,2,2,3,4], [2,3,3,5,6], 'asymptotic')
        //   -> U=19.0, 0.19882894401644247, 0.09941447200822123, 0.9330689276222845
        check_asymptotic(
            &[1.0, 2.0, 2.0, 3.0, 4.0],
            &[2.0, 3.0, 3.0, 5.0, 6.0],
            (
                19.0,
                0.19882894401644247,
                0.09941447200822123,
                0.9330689276222845,
            ),
        );
        // mwu(T7, T9, 'asymptotic') -> U=23.0, 0.3751659141135204, 0.8407859222232422, 0.1875829570567602
        check_asymptotic(
            &T7,
            &T9,
            (
                23.0,
                0.3751659141135204,
                0.8407859222232422,
                0.1875829570567602,
            ),
        );
        // mwu(T10B, T10H, 'asymptotic') -> U=89.5, 0.0030279156927727293, 0.0015139578463863647, 0.99882068783269
        check_asymptotic(
            &T10B,
            &T10H,
            (
                89.5,
                0.0030279156927727293,
                0.0015139578463863647,
                0.99882068783269,
            ),
        );
        // mwu([1,2,3,4], [4,5,6,7], 'asymptotic'): the anti-conservative
        // value the exact test replaces (exact: 0.0571).
        check_asymptotic(&[1.0, 2.0, 3.0, 4.0], &[4.0, 5.0, 6.0, 7.0], ASYMPTOTIC_4V4);
        // mwu([1,2,3,4,5], [1,2,3,4,5], 'asymptotic') -> U=12.5, 1.0, 0.5422350133116141, 0.5422350133116141
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        check_asymptotic(
            &xs,
            &xs,
            (12.5, 1.0, 0.5422350133116141, 0.5422350133116141),
        );
        // mwu([3,3,3], [3,3], 'asymptotic') -> U=3.0, 1.0, 1.0, 1.0 (zero variance)
        check_asymptotic(&[3.0, 3.0, 3.0], &[3.0, 3.0], (3.0, 1.0, 1.0, 1.0));
    }

    // ----------------------------------------------------------------------
    // Mann–Whitney, exact with ties
    //
    // References: exact permutation p-values by enumerating every split of
    // the pooled values into base and head, U counted pair by pair (no ranks),
    // in Python with exact fractions:
    //   def u_of(b, h): return sum(1 if y > x else Fraction(1, 2) if y == x else 0 for y in h for x in b)
    //   obs = u_of(base, head); for each combination of len(head) pooled
    //   positions: u = u_of(rest, chosen); p_greater = #(u >= obs) / total,
    //   p_less = #(u <= obs) / total, two-sided = min(1, 2 min(p_greater, p_less)),
    // printed as perm(base, head) -> (U, two-sided, greater, less). The test
    // `mw_ties_match_brute_force_enumeration` runs the same enumeration in
    // Rust on these cases and more.
    // ----------------------------------------------------------------------

    #[test]
    fn mw_ties_are_exact_4v4_from_the_issue() {
        // perm([1,2,3,4], [4,5,6,7]) -> (15.5, 0.05714285714285714, 0.02857142857142857, 1.0)
        check_mw(
            &[1.0, 2.0, 3.0, 4.0],
            &[4.0, 5.0, 6.0, 7.0],
            (15.5, 0.05714285714285714, 0.02857142857142857, 1.0, true),
        );
        // perm([4,5,6,7], [1,2,3,4]) -> (0.5, 0.05714285714285714, 1.0, 0.02857142857142857)
        check_mw(
            &[4.0, 5.0, 6.0, 7.0],
            &[1.0, 2.0, 3.0, 4.0],
            (0.5, 0.05714285714285714, 1.0, 0.02857142857142857, true),
        );
    }

    #[test]
    fn mw_ties_against_permutation_reference() {
        // perm([1,2,2,3,4], [2,3,3,5,6]) -> (19.0, 0.21428571428571427, 0.10714285714285714, 0.9404761904761905)
        check_mw(
            &[1.0, 2.0, 2.0, 3.0, 4.0],
            &[2.0, 3.0, 3.0, 5.0, 6.0],
            (
                19.0,
                0.21428571428571427,
                0.10714285714285714,
                0.9404761904761905,
                true,
            ),
        );
        // perm(T7, T9) -> (23.0, 0.4548951048951049, 0.8468531468531468, 0.22744755244755244)
        check_mw(
            &T7,
            &T9,
            (
                23.0,
                0.4548951048951049,
                0.8468531468531468,
                0.22744755244755244,
                true,
            ),
        );
        // perm(T9, T7) -> (40.0, 0.4548951048951049, 0.22744755244755244, 0.8468531468531468)
        check_mw(
            &T9,
            &T7,
            (
                40.0,
                0.4548951048951049,
                0.22744755244755244,
                0.8468531468531468,
                true,
            ),
        );
        // perm([1,1,1,2,2], [1,2,2,2,3,3]) -> (23.5, 0.20346320346320346, 0.10173160173160173, 0.9848484848484849)
        check_mw(
            &[1.0, 1.0, 1.0, 2.0, 2.0],
            &[1.0, 2.0, 2.0, 2.0, 3.0, 3.0],
            (
                23.5,
                0.20346320346320346,
                0.10173160173160173,
                0.9848484848484849,
                true,
            ),
        );
        // perm(T10B, T10H) -> (89.5, 0.0016129381454458853, 0.0008064690727229427, 0.9993883825153175)
        check_mw(
            &T10B,
            &T10H,
            (
                89.5,
                0.0016129381454458853,
                0.0008064690727229427,
                0.9993883825153175,
                true,
            ),
        );
        // perm([2,2,2,2], [2,2,2,5]) -> (10.0, 1.0, 0.5, 1.0)
        check_mw(
            &[2.0, 2.0, 2.0, 2.0],
            &[2.0, 2.0, 2.0, 5.0],
            (10.0, 1.0, 0.5, 1.0, true),
        );
    }

    #[test]
    fn mw_identical_samples_give_p_one() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        // perm([1,2,3,4,5], [1,2,3,4,5]) -> (12.5, 1.0, 0.5873015873015873, 0.5873015873015873)
        check_mw(
            &xs,
            &xs,
            (12.5, 1.0, 0.5873015873015873, 0.5873015873015873, true),
        );
        // perm([3,3,3], [3,3]) -> (3.0, 1.0, 1.0, 1.0): every split has U = 3.
        check_mw(&[3.0, 3.0, 3.0], &[3.0, 3.0], (3.0, 1.0, 1.0, 1.0, true));
        check_mw(&[1.0], &[1.0], (0.5, 1.0, 1.0, 1.0, true));
    }

    /// Exact permutation p-values (U, two-sided, greater, less) by
    /// enumerating all `C(n1 + n2, n2)` splits of the pooled sample; U
    /// counted pair by pair in halves (no ranks), so it shares nothing with
    /// the code under test.
    fn brute_force(base: &[f64], head: &[f64]) -> (f64, f64, f64, f64) {
        let doubled_u = |b: &[f64], h: &[f64]| -> u64 {
            h.iter()
                .flat_map(|y| b.iter().map(move |x| (x, y)))
                .map(|(x, y)| match y.partial_cmp(x) {
                    Some(std::cmp::Ordering::Greater) => 2,
                    Some(std::cmp::Ordering::Equal) => 1,
                    _ => 0,
                })
                .sum()
        };
        let pooled: Vec<f64> = base.iter().chain(head).copied().collect();
        let n = pooled.len();
        assert!(n <= 24, "brute force is for small samples");
        let obs = doubled_u(base, head);
        let (mut ge, mut le, mut total) = (0u64, 0u64, 0u64);
        let (mut b, mut h) = (Vec::new(), Vec::new());
        for mask in 0u32..1 << n {
            if mask.count_ones() as usize != head.len() {
                continue;
            }
            b.clear();
            h.clear();
            for (i, &x) in pooled.iter().enumerate() {
                if mask >> i & 1 == 1 {
                    h.push(x);
                } else {
                    b.push(x);
                }
            }
            let u = doubled_u(&b, &h);
            total += 1;
            ge += u64::from(u >= obs);
            le += u64::from(u <= obs);
        }
        let pg = ge as f64 / total as f64;
        let pl = le as f64 / total as f64;
        (obs as f64 / 2.0, (2.0 * pg.min(pl)).min(1.0), pg, pl)
    }

    #[test]
    fn mw_ties_match_brute_force_enumeration() {
        // Ties, all ties, no ties, unbalanced, signed zeros, infinities.
        let cases: Vec<(Vec<f64>, Vec<f64>)> = vec![
            (vec![1.0, 2.0, 3.0, 4.0], vec![4.0, 5.0, 6.0, 7.0]),
            (vec![1.0, 2.0, 2.0, 3.0, 4.0], vec![2.0, 3.0, 3.0, 5.0, 6.0]),
            (T7.to_vec(), T9.to_vec()),
            (T9.to_vec(), T7.to_vec()),
            (vec![3.0; 6], vec![3.0; 5]),
            (vec![1.0, 1.0, 2.0], vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]),
            (vec![5.0; 3], vec![1.0, 5.0, 5.0, 9.0, 9.0, 9.0, 9.0, 9.0]),
            (B5.to_vec(), H5.to_vec()),
            (B7.to_vec(), H9.to_vec()),
            (vec![-0.0, 1.0, 1.0], vec![0.0, 2.0, 1.0]),
            (
                vec![f64::NEG_INFINITY, 2.0, 2.0, f64::INFINITY],
                vec![2.0, f64::INFINITY, 3.0],
            ),
            (
                vec![7.0],
                vec![7.0, 7.0, 8.0, 6.0, 7.0, 7.0, 7.0, 7.0, 7.0, 1.0],
            ),
            (
                vec![4.0, 4.0, 4.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
                vec![4.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0],
            ),
        ];
        for (base, head) in &cases {
            let r = mann_whitney(base, head).unwrap();
            let (u, two, greater, less) = brute_force(base, head);
            let ctx = format!("{base:?} vs {head:?}: {r:?}");
            assert!(r.exact, "{ctx}");
            assert_eq!(r.u_head, u, "{ctx}");
            close(r.p_two_sided, two);
            close(r.p_greater, greater);
            close(r.p_less, less);
        }
    }

    #[test]
    fn tie_distribution_without_ties_is_the_continuous_one() {
        // All groups of size 1: the dynamic programme must reproduce the
        // Gaussian-binomial distribution (2U = 2u).
        for (n1, n2) in [(1, 1), (3, 5), (5, 3), (7, 7), (12, 30), (50, 50), (1, 200)] {
            let tied = TiedUDistribution::new(&vec![1; n1 + n2], n1, n2).unwrap();
            let plain = UDistribution::new(n1, n2).unwrap();
            assert_eq!(tied.total, plain.total, "{n1} v {n2}");
            for u in 0..=n1 * n2 {
                assert_eq!(
                    tied.cumulative[2 * u],
                    plain.cumulative[u],
                    "{n1} v {n2}, u {u}"
                );
            }
        }
    }

    #[test]
    fn tie_distribution_mirrors_under_reversal_and_sums_to_the_binomial() {
        // Reversing the order of the values (and so of the tie groups) maps U
        // of head to n1 n2 - U: the distributions are mirror images.
        let groups = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
        let n: usize = groups.iter().sum();
        for n2 in [1, 7, 22, n - 3] {
            let n1 = n - n2;
            let fwd = TiedUDistribution::new(&groups, n1, n2).unwrap();
            let rev_groups: Vec<usize> = groups.iter().rev().copied().collect();
            let rev = TiedUDistribution::new(&rev_groups, n1, n2).unwrap();
            assert_eq!(fwd.total, binomial_u128(n as u128, n2 as u128));
            let w = 2 * n1 * n2;
            for d in 0..=w {
                // P(2U <= d) forward = P(2U >= w - d) reversed.
                close(fwd.cdf(d), rev.sf(w - d));
            }
        }
        assert!(TiedUDistribution::new(&[2, 2], 3, 2).is_none());
        assert!(TiedUDistribution::new(&[2], 2, 0).is_none());
    }

    #[test]
    fn mw_ties_at_the_exact_limit_stay_exact() {
        // 50 vs 50 with values on a coarse grid (ties everywhere): exact, and
        // close to the tie-corrected normal approximation at this size.
        let base: Vec<f64> = (0..50).map(|i| ((i * 37) % 11) as f64).collect();
        let head: Vec<f64> = (0..50).map(|i| ((i * 53) % 11 + 1) as f64).collect();
        let r = mann_whitney(&base, &head).unwrap();
        assert!(r.exact);
        let a = normal_approximation(&rank_sum_head(&base, &head), 50, 50);
        assert!(
            (r.p_two_sided - a.p_two_sided).abs() < 0.01,
            "{r:?} vs {a:?}"
        );
        // Beyond the limit: the approximation.
        let base: Vec<f64> = (0..51).map(|i| (i % 5) as f64).collect();
        assert!(!mann_whitney(&base, &head).unwrap().exact);
    }

    #[test]
    fn mw_is_antisymmetric() {
        for (b, h) in [
            (&B7[..], &H9[..]),
            (&T10B[..], &T10H[..]),
            (&B20[..], &H20[..]),
        ] {
            let fwd = mann_whitney(b, h).unwrap();
            let rev = mann_whitney(h, b).unwrap();
            close(fwd.u_head, (b.len() * h.len()) as f64 - rev.u_head);
            close(fwd.p_greater, rev.p_less);
            close(fwd.p_less, rev.p_greater);
            close(fwd.p_two_sided, rev.p_two_sided);
        }
    }

    #[test]
    fn mw_edge_cases() {
        assert_eq!(mann_whitney(&[], &[1.0]), None);
        assert_eq!(mann_whitney(&[1.0], &[]), None);
        assert_eq!(mann_whitney(&[], &[]), None);
        assert_eq!(mann_whitney(&[1.0, f64::NAN], &[2.0]), None);
        assert_eq!(mann_whitney(&[1.0], &[2.0, f64::NAN]), None);
        // Infinities are ranked like ordinary extreme values (3v3 separated).
        let r = mann_whitney(&[f64::NEG_INFINITY, 2.0, 3.0], &[4.0, 5.0, f64::INFINITY]).unwrap();
        assert!(r.exact);
        close(r.p_two_sided, 0.1);
        // -0.0 and +0.0 are a tie: perm([-0.0,1.0], [0.0,2.0]) -> (2.5, 1.0, 0.5, 0.8333333333333334)
        check_mw(
            &[-0.0, 1.0],
            &[0.0, 2.0],
            (2.5, 1.0, 0.5, 0.8333333333333334, true),
        );
    }

    // ----------------------------------------------------------------------
    // Exact distribution
    // ----------------------------------------------------------------------

    fn binomial_u128(n: u128, k: u128) -> u128 {
        (1..=k).fold(1u128, |acc, i| acc * (n - k + i) / i)
    }

    #[test]
    fn u_distribution_is_consistent_up_to_the_exact_limit() {
        for (n1, n2) in [
            (1, 1),
            (1, 2500),
            (2, 1250),
            (4, 6),
            (6, 4),
            (25, 100),
            (30, 83),
            (40, 62),
            (45, 55),
            (50, 50),
        ] {
            let d = UDistribution::new(n1, n2).expect("fits in u128");
            assert_eq!(d.max_u(), n1 * n2);
            assert_eq!(
                d.total,
                binomial_u128((n1 + n2) as u128, n1.min(n2) as u128)
            );
            // Symmetry: P(U <= u) = P(U >= n1 n2 - u).
            for u in [0, 1, n1 * n2 / 3, n1 * n2 / 2] {
                close(d.cdf(u), d.sf(n1 * n2 - u));
            }
        }
        // 4 vs 6, brute force over the C(10, 4) = 210 arrangements.
        let d = UDistribution::new(4, 6).unwrap();
        let mut counts = [0u128; 25];
        for mask in 0u32..1 << 10 {
            if mask.count_ones() != 4 {
                continue;
            }
            // U = number of (bit set, bit unset) pairs with the set bit higher.
            let u: usize = (0..10)
                .filter(|&i| mask >> i & 1 == 1)
                .map(|i| (0..i).filter(|&j| mask >> j & 1 == 0).count())
                .sum();
            counts[u] += 1;
        }
        let mut acc = 0;
        for (u, c) in counts.iter().enumerate() {
            acc += c;
            assert_eq!(d.cumulative[u], acc, "u = {u}");
        }
        assert!(UDistribution::new(0, 5).is_none());
    }

    // ----------------------------------------------------------------------
    // Hodges–Lehmann
    //
    // Reference (numpy 2.4.6, exact null distribution of U by the recurrence
    // f(m,n,u) = f(m-1,n,u-n) + f(m,n-1,u), cross-checked against brute-force
    // enumeration for 5v5 and 4v6 and independent of the Rust code):
    //   d = np.sort(np.subtract.outer(head, base).ravel()); N = len(d)
    //   c = max{c : cdf(c) <= (1-conf)/2} (or -1); k = max(1, c+1)
    //   estimate = np.median(d); low = d[k-1]; high = d[N-k]
    //   achieved = 1 - 2*cdf(k-1)
    // ----------------------------------------------------------------------

    #[track_caller]
    fn check_hl(base: &[f64], head: &[f64], conf: f64, expected: (f64, f64, f64, f64)) {
        let r = hodges_lehmann(base, head, conf).expect("valid input");
        close(r.estimate, expected.0);
        close(r.low, expected.1);
        close(r.high, expected.2);
        close(r.achieved_confidence, expected.3);
    }

    #[test]
    fn hl_small_samples_against_reference() {
        // moses(B5, H5, 0.95) -> -0.0040000000000000036, -0.08599999999999997, 0.08299999999999996, 0.9682539682539683 (k=3)
        check_hl(
            &B5,
            &H5,
            0.95,
            (
                -0.0040000000000000036,
                -0.08599999999999997,
                0.08299999999999996,
                0.9682539682539683,
            ),
        );
        // moses([10.1,10.3,10.2,10.4,10.0], [11.0,11.2,11.1,11.3,11.4], 0.95)
        //   -> 1.0, 0.6999999999999993, 1.3000000000000007, 0.9682539682539683 (k=3)
        check_hl(
            &[10.1, 10.3, 10.2, 10.4, 10.0],
            &[11.0, 11.2, 11.1, 11.3, 11.4],
            0.95,
            (
                1.0,
                0.6999999999999993,
                1.3000000000000007,
                0.9682539682539683,
            ),
        );
        // moses(B7, H9, 0.95) -> -0.42300000000000004, -1.5670000000000002, 0.9699999999999989, 0.9582167832167832 (k=13)
        check_hl(
            &B7,
            &H9,
            0.95,
            (
                -0.42300000000000004,
                -1.5670000000000002,
                0.9699999999999989,
                0.9582167832167832,
            ),
        );
        // moses(B10, H10, 0.90) -> 0.6675, 0.26900000000000013, 0.8840000000000003, 0.9107904479421507 (k=28)
        check_hl(
            &B10,
            &H10,
            0.90,
            (
                0.6675,
                0.26900000000000013,
                0.8840000000000003,
                0.9107904479421507,
            ),
        );
    }

    #[test]
    fn hl_20v20_against_reference() {
        // moses(B20, H20, 0.95) -> 1.9570000000000007, 0.39000000000000057, 3.4470000000000027, 0.9509096748106276 (k=128)
        check_hl(
            &B20,
            &H20,
            0.95,
            (
                1.9570000000000007,
                0.39000000000000057,
                3.4470000000000027,
                0.9509096748106276,
            ),
        );
        // moses(B20, H20, 0.99) -> 1.9570000000000007, -0.1869999999999976, 3.878, 0.990516392808795 (k=106)
        check_hl(
            &B20,
            &H20,
            0.99,
            (
                1.9570000000000007,
                -0.1869999999999976,
                3.878,
                0.990516392808795,
            ),
        );
    }

    #[test]
    fn hl_with_ties_uses_exact_ranks() {
        // moses(T7, T9, 0.95) -> -1.0, -2.0, 1.0, 0.9582167832167832 (k=13)
        check_hl(&T7, &T9, 0.95, (-1.0, -2.0, 1.0, 0.9582167832167832));
    }

    #[test]
    fn hl_coverage_with_ties_is_conservative() {
        // Base and head drawn from one three-valued distribution (shift 0),
        // 4 vs 5 runs: every one of the 3^9 samples weighted by its exact
        // probability. The closed interval must cover 0 with probability at
        // least its stated coverage (see `hodges_lehmann` for the argument).
        let probs = [0.2, 0.5, 0.3];
        for conf in [0.8, 0.9, 0.95] {
            let (mut covered, mut total) = (0.0, 0.0);
            let mut achieved = f64::NAN;
            for code in 0..3usize.pow(9) {
                let mut digits = code;
                let mut values = [0.0; 9];
                let mut weight = 1.0;
                for v in &mut values {
                    *v = (digits % 3) as f64;
                    weight *= probs[digits % 3];
                    digits /= 3;
                }
                let r = hodges_lehmann(&values[..4], &values[4..], conf).unwrap();
                achieved = r.achieved_confidence;
                total += weight;
                if r.low <= 0.0 && 0.0 <= r.high {
                    covered += weight;
                }
            }
            let coverage = covered / total;
            assert!(
                coverage >= achieved - 1e-12,
                "confidence {conf}: coverage {coverage} < stated {achieved}"
            );
        }
    }

    #[test]
    fn hl_too_small_returns_widest_interval() {
        // 3 vs 3 cannot reach 95%: widest interval, coverage 1 - 2/20 = 0.9.
        // moses([1,2,3], [4,5,6], 0.95) -> 3.0, 1.0, 5.0, 0.9 (k=1)
        check_hl(
            &[1.0, 2.0, 3.0],
            &[4.0, 5.0, 6.0],
            0.95,
            (3.0, 1.0, 5.0, 0.9),
        );
        // 1 vs 1: the single difference, coverage 0.
        let r = hodges_lehmann(&[2.0], &[5.0], 0.95).unwrap();
        assert_eq!((r.estimate, r.low, r.high), (3.0, 3.0, 3.0));
        assert_eq!(r.achieved_confidence, 0.0);
    }

    #[test]
    fn hl_large_sample_uses_normal_ranks() {
        // 60 * 60 > EXACT_MAX_PAIRS.
        // base = [float(i) for i in range(60)]; head = [i+7.5+(i%7)*0.25 for i in range(60)]
        // mu = N/2; sig = sqrt(N*(m+n+1)/12); z = scipy.stats.norm.ppf(0.975)
        // k = max(1, floor(mu - z*sig - 0.5) + 1)  (= 1427)
        // -> 8.25, 1.75, 14.75, 1 - 2*norm.cdf((k-0.5-mu)/sig) = 0.9500470427264741
        let base = range(60, 0.0);
        let head: Vec<f64> = (0..60)
            .map(|i| i as f64 + 7.5 + (i % 7) as f64 * 0.25)
            .collect();
        check_hl(&base, &head, 0.95, (8.25, 1.75, 14.75, 0.9500470427264741));
    }

    #[test]
    fn hl_interval_inverts_the_exact_test() {
        // For shifts strictly inside the interval the exact two-sided test of
        // (head - delta) against base does not reject at 1 - confidence;
        // strictly outside it does.
        let conf = 0.95;
        let r = hodges_lehmann(&B7, &H9, conf).unwrap();
        let p_at = |delta: f64| {
            let shifted: Vec<f64> = H9.iter().map(|h| h - delta).collect();
            mann_whitney(&B7, &shifted).unwrap().p_two_sided
        };
        assert!(p_at(r.low + 1e-4) > 1.0 - conf);
        assert!(p_at(r.high - 1e-4) > 1.0 - conf);
        assert!(p_at(r.estimate + 1e-4) > 1.0 - conf);
        assert!(p_at(r.low - 1e-4) <= 1.0 - conf);
        assert!(p_at(r.high + 1e-4) <= 1.0 - conf);
    }

    #[test]
    fn kth_difference_matches_sorting() {
        // Data with duplicates, negative values and signed zeros.
        let base = [3.0, -1.5, 0.0, 2.25, 3.0, -0.0, 7.0];
        let head = [1.0, 1.0, -2.0, 4.5, 0.0, 10.0];
        let mut b = base.to_vec();
        b.sort_by(f64::total_cmp);
        let mut h = head.to_vec();
        h.sort_by(f64::total_cmp);
        let mut all: Vec<f64> = h
            .iter()
            .flat_map(|y| b.iter().map(move |x| y - x))
            .collect();
        all.sort_by(f64::total_cmp);
        let diffs = SortedDifferences { base: &b, head: &h };
        for (i, d) in all.iter().enumerate() {
            assert_eq!(diffs.kth(i as u128 + 1), *d, "k = {}", i + 1);
        }
    }

    #[test]
    fn materialised_and_implicit_differences_agree() {
        // Pseudo-random data on a coarse grid (ties, signed zeros), several sizes.
        let mut x: u64 = 12345;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % 17) as f64 * 0.25 - 2.0
        };
        for (n1, n2) in [(1, 1), (3, 8), (10, 10), (30, 5), (50, 50)] {
            let mut b: Vec<f64> = (0..n1).map(|_| next()).collect();
            let mut h: Vec<f64> = (0..n2).map(|_| next()).collect();
            b.sort_by(f64::total_cmp);
            h.sort_by(f64::total_cmp);
            let sorted = Differences::new(&b, &h);
            assert!(matches!(sorted, Differences::Sorted(_)));
            let implicit = SortedDifferences { base: &b, head: &h };
            for k in 1..=(n1 * n2) as u128 {
                let (a, c) = (sorted.kth(k), implicit.kth(k));
                assert!(
                    a == c && a.is_sign_negative() == c.is_sign_negative(),
                    "{n1}v{n2} k {k}: {a} vs {c}"
                );
            }
        }
        let b: Vec<f64> = (0..60).map(|i| i as f64).collect();
        assert!(matches!(Differences::new(&b, &b), Differences::Implicit(_)));
    }

    #[test]
    fn several_levels_at_once_match_one_at_a_time() {
        let levels = [0.9, 0.95, 0.99];
        let all = shift_estimates(&B20, &H20, &levels).unwrap();
        let ratios = ratio_estimates(&B20, &H20, &levels).unwrap();
        for ((one, r), &c) in all.iter().zip(&ratios).zip(&levels) {
            assert_eq!(*one, hodges_lehmann(&B20, &H20, c).unwrap());
            assert_eq!(*r, ratio_estimate(&B20, &H20, c).unwrap());
        }
        assert_eq!(shift_estimates(&B20, &H20, &[0.9, 1.0]), None);
        assert_eq!(ratio_estimates(&B20, &H20, &[]), Some(vec![]));
    }

    #[test]
    fn hl_edge_cases() {
        assert_eq!(hodges_lehmann(&[], &[1.0], 0.95), None);
        assert_eq!(hodges_lehmann(&[1.0], &[], 0.95), None);
        assert_eq!(hodges_lehmann(&[1.0, f64::NAN], &[1.0], 0.95), None);
        assert_eq!(hodges_lehmann(&[1.0], &[f64::INFINITY], 0.95), None);
        for conf in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            assert_eq!(hodges_lehmann(&[1.0], &[2.0], conf), None, "{conf}");
        }
        // Identical samples: estimate 0.
        let r = hodges_lehmann(&B10, &B10, 0.95).unwrap();
        assert_eq!(r.estimate, 0.0);
        assert!(r.low < 0.0 && r.high > 0.0);
        // Huge values: differences overflow to infinity without NaN.
        let r = hodges_lehmann(&[-f64::MAX], &[f64::MAX], 0.5).unwrap();
        assert_eq!(r.estimate, f64::INFINITY);
    }

    // ----------------------------------------------------------------------
    // Ratio
    // ----------------------------------------------------------------------

    #[test]
    fn ratio_against_reference() {
        // e, l, h, a = moses(np.log(B10), np.log(H10), 0.95); exp(e), exp(l), exp(h), a
        //   -> 1.1376659588047073, 1.0432511491851235, 1.1987939698492462, 0.9567429474550218 (k=24)
        let r = ratio_estimate(&B10, &H10, 0.95).unwrap();
        close(r.estimate, 1.1376659588047073);
        close(r.low, 1.0432511491851235);
        close(r.high, 1.1987939698492462);
        close(r.achieved_confidence, 0.9567429474550218);
        // same for B20, H20
        //   -> 1.0197281632843878, 1.0038221429481466, 1.0348037681364286, 0.9509096748106276 (k=128)
        let r = ratio_estimate(&B20, &H20, 0.95).unwrap();
        close(r.estimate, 1.0197281632843878);
        close(r.low, 1.0038221429481466);
        close(r.high, 1.0348037681364286);
        close(r.achieved_confidence, 0.9509096748106276);
    }

    #[test]
    fn ratio_of_scaled_sample() {
        let head: Vec<f64> = B20.iter().map(|x| x * 1.5).collect();
        let r = ratio_estimate(&B20, &head, 0.95).unwrap();
        close(r.estimate, 1.5);
        assert!(r.low <= 1.5 && r.high >= 1.5 && r.low > 1.0);
    }

    #[test]
    fn ratio_rejects_non_positive_and_non_finite() {
        assert_eq!(ratio_estimate(&[1.0, 0.0], &[2.0], 0.95), None);
        assert_eq!(ratio_estimate(&[1.0], &[-2.0], 0.95), None);
        assert_eq!(ratio_estimate(&[1.0], &[f64::NAN], 0.95), None);
        assert_eq!(ratio_estimate(&[f64::INFINITY], &[1.0], 0.95), None);
        assert_eq!(ratio_estimate(&[], &[1.0], 0.95), None);
        assert_eq!(ratio_estimate(&[1.0], &[2.0], 2.0), None);
    }

    // ----------------------------------------------------------------------
    // Benjamini–Hochberg
    // ----------------------------------------------------------------------

    #[track_caller]
    fn check_bh(ps: &[f64], expected: &[f64]) {
        let q = benjamini_hochberg(ps);
        assert_eq!(q.len(), expected.len());
        for (a, e) in q.iter().zip(expected) {
            close(*a, *e);
        }
    }

    #[test]
    fn bh_against_scipy() {
        // scipy.stats.false_discovery_control([0.01,0.04,0.03,0.005,0.5,0.2], method='bh')
        check_bh(
            &[0.01, 0.04, 0.03, 0.005, 0.5, 0.2],
            &[0.03, 0.06, 0.06, 0.03, 0.5, 0.24],
        );
        // scipy.stats.false_discovery_control([0.001,0.008,0.039,0.041,0.042,0.06,0.074,0.205,0.212,0.216], method='bh')
        check_bh(
            &[
                0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216,
            ],
            &[
                0.01,
                0.04,
                0.084,
                0.084,
                0.084,
                0.1,
                0.1057142857142857,
                0.216,
                0.216,
                0.216,
            ],
        );
        // scipy.stats.false_discovery_control([0.9,0.95,1.0,0.2], method='bh')
        check_bh(&[0.9, 0.95, 1.0, 0.2], &[1.0, 1.0, 1.0, 0.8]);
        // scipy.stats.false_discovery_control([0.02,0.02,0.02,0.5], method='bh')
        check_bh(
            &[0.02, 0.02, 0.02, 0.5],
            &[
                0.026666666666666665,
                0.026666666666666665,
                0.026666666666666665,
                0.5,
            ],
        );
    }

    #[test]
    fn bh_edge_cases() {
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(benjamini_hochberg(&[0.3]), vec![0.3]);
        // NaN stays NaN and is not counted: same as BH of [0.01, 0.04].
        let q = benjamini_hochberg(&[0.01, f64::NAN, 0.04]);
        assert!(q[1].is_nan());
        close(q[0], 0.02);
        close(q[2], 0.04);
        // Out-of-range values are clamped into [0, 1].
        assert_eq!(benjamini_hochberg(&[-0.1, 1.5]), vec![0.0, 1.0]);
    }

    // ----------------------------------------------------------------------
    // Descriptive helpers
    // ----------------------------------------------------------------------

    const XS: [f64; 7] = [3.5, 1.25, 9.0, 4.75, 2.0, 7.125, 6.5];

    #[test]
    fn quantile_matches_numpy() {
        // numpy.quantile(XS, q)
        for (q, expected) in [
            (0.0, 1.25),
            (0.1, 1.7000000000000002),
            (0.25, 2.75),
            (0.5, 4.75),
            (0.9, 7.875000000000001),
            (0.95, 8.437499999999998),
            (1.0, 9.0),
        ] {
            close(quantile(&XS, q).unwrap(), expected);
        }
        assert_eq!(quantile(&[4.0], 0.3), Some(4.0));
    }

    #[test]
    fn median_and_mean_match_numpy() {
        // numpy.median(XS) -> 4.75; numpy.median(XS[:6]) -> 4.125; numpy.mean(XS) -> 4.875
        assert_eq!(median(&XS), Some(4.75));
        assert_eq!(median(&XS[..6]), Some(4.125));
        close(mean(&XS).unwrap(), 4.875);
        assert_eq!(median(&[2.0]), Some(2.0));
        assert_eq!(mean(&[2.0]), Some(2.0));
    }

    #[test]
    fn median_by_selection_matches_sorting() {
        let mut x: u64 = 99;
        for n in 1..40 {
            let xs: Vec<f64> = (0..n)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((x >> 33) % 9) as f64 - 4.0 + if x >> 20 & 1 == 1 { -0.0 } else { 0.0 }
                })
                .collect();
            let mut sorted = xs.clone();
            sorted.sort_by(f64::total_cmp);
            let expected = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                midpoint(sorted[n / 2 - 1], sorted[n / 2])
            };
            let m = median(&xs).unwrap();
            assert!(
                m == expected && m.is_sign_negative() == expected.is_sign_negative(),
                "{xs:?}"
            );
        }
    }

    #[test]
    fn helpers_edge_cases() {
        assert_eq!(median(&[]), None);
        assert_eq!(mean(&[]), None);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
        assert_eq!(mean(&[1.0, f64::NAN]), None);
        assert_eq!(quantile(&[1.0, f64::NAN], 0.5), None);
        assert_eq!(quantile(&XS, -0.1), None);
        assert_eq!(quantile(&XS, 1.1), None);
        assert_eq!(quantile(&XS, f64::NAN), None);
        assert_eq!(median(&[f64::INFINITY, 1.0, 2.0]), Some(2.0));
    }

    // ----------------------------------------------------------------------
    // Minimum p-value
    // ----------------------------------------------------------------------

    #[test]
    fn min_p_matches_binomial() {
        // 2 / scipy.special.comb(n1 + n2, n1, exact=True)
        for (n1, n2, expected) in [
            (1, 1, 1.0),
            (2, 2, 0.3333333333333333),
            (3, 3, 0.1),
            (4, 4, 0.02857142857142857),
            (5, 5, 0.007936507936507936),
            (3, 5, 0.03571428571428571),
            (5, 3, 0.03571428571428571),
            (7, 9, 0.00017482517482517483),
            (10, 10, 1.082508822446903e-05),
            (20, 20, 1.4508889103849688e-11),
            (50, 50, 1.9823306042836678e-29),
        ] {
            close(min_p_two_sided(n1, n2), expected);
        }
    }

    #[test]
    fn min_p_is_reached_by_separated_samples() {
        for (n1, n2) in [(3, 3), (5, 5), (7, 9), (20, 20)] {
            let p = mann_whitney(&range(n1, 0.0), &range(n2, 100.0))
                .unwrap()
                .p_two_sided;
            close(p, min_p_two_sided(n1, n2));
        }
    }

    #[test]
    fn min_p_edge_cases() {
        assert_eq!(min_p_two_sided(0, 5), 1.0);
        assert_eq!(min_p_two_sided(0, 0), 1.0);
        assert_eq!(min_p_two_sided(1000, 1000), 0.0);
        assert_eq!(min_p_two_sided(usize::MAX, usize::MAX), 0.0);
        assert!(min_p_two_sided(1, usize::MAX) > 0.0);
    }
}
