//! The group-sequential rule: how many head runs a check makes and what each function's verdict is after
//! each look, so that looking again after more runs does not buy false alarms.
//!
//! The rule, per check:
//! * **Looks at fixed run counts** (default 5, 10, 15, 20, 30 head runs against a 30-run baseline). The
//!   information of a look with `n` head runs against `N` base runs is `1 / (1/N + 1/n)` (the inverse
//!   variance of a difference of means); its *fraction* `t` is that over the last look's.
//! * **Confidence per look from an O'Brien–Fleming-type spending function** (Lan–DeMets):
//!   `α(t) = 2 − 2 Φ(z_{α/2} / √t)` is the two-sided error spent by information fraction `t`, half on each
//!   side. The boundary `c_k` of each look is the exact group-sequential one for the canonical joint normal
//!   distribution of the looks' statistics (`corr(Z_j, Z_k) = √(t_j / t_k)`, which holds with the base runs
//!   shared by every look): the probability of first crossing at look `k` is `(α(t_k) − α(t_{k−1})) / 2`,
//!   solved by numerical integration on a grid (Armitage–McPherson–Rowe recursion, Simpson's rule). The
//!   look's nominal two-sided level is `2 (1 − Φ(c_k))` and its confidence one minus that: tiny at the first
//!   looks, close to `1 − α` at the last. The boundaries are exact for normally distributed statistics; the
//!   rank test and the Hodges–Lehmann interval used at each look's level inherit them approximately, as
//!   group-sequential rank tests do, which is why the error rates are measured by simulation
//!   ([`super::sim`]) rather than assumed.
//! * **Per function at each look**: the Mann–Whitney p-values of all gated functions are adjusted together
//!   (Benjamini–Hochberg); a function is **regressed** when its q-value is below the look's level and the
//!   whole ratio interval at the look's confidence lies above `1 + threshold`, **improved** likewise below
//!   `1 / (1 + threshold)`, **unchanged** when the equivalence interval (90% by default: two one-sided
//!   tests at 5%) lies inside `[1/(1 + threshold), 1 + threshold]`, and **inconclusive** otherwise. The
//!   equivalence interval keeps its confidence at every look (it is not spent): its error is calling a
//!   real change "unchanged", which the simulation counts as a missed regression.
//! * **A confirmed regression or improvement is final**: later looks keep it as it was when confirmed.
//!   An *unchanged* verdict stays unless a later look confirms a regression or an improvement (both are
//!   tested at every look, so that stays within the spent error); it never goes back to inconclusive, so the
//!   set of decided functions only grows.
//! * **Stop** as soon as every gated function is decided, or (by default) as soon as one regression is
//!   confirmed (the check fails whatever the others say), or at the last look. What is still undecided
//!   then is inconclusive, reported with the measured noise and the smallest effect the check could have
//!   detected.
//!
//! Invariants: pure (no I/O, deterministic); settings are validated by [`SequentialRule::new`], after which
//! nothing panics on any figures (empty, zero, NaN or infinite figures give an inconclusive verdict without
//! numbers); the boundaries are computed once per rule (milliseconds for the default schedule, well under
//! a second for the longest one [`schedule`] makes).
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::model::{GateSettings, Verdict};
use super::stats;

/// Head run counts of the looks, by default (chosen by the simulation in [`super::sim`]).
pub const DEFAULT_LOOKS: [usize; 5] = [5, 10, 15, 20, 30];

/// Runs a baseline should have for the default schedule (the simulation's choice).
pub const DEFAULT_BASE_RUNS: usize = 30;

/// Most looks a schedule may have (each costs a numerical integration when the rule is made, and every
/// look spends error).
pub const MAX_LOOKS: usize = 32;

/// The probability with which "the smallest detectable effect" would be confirmed.
pub const DETECTION_POWER: f64 = 0.8;

/// Settings of the sequential rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialSettings {
    /// Two-sided error spent over all looks (also the false-discovery rate across functions).
    pub alpha: f64,
    /// Smallest change that counts, as a fraction (0.05 = 5% slower).
    pub threshold: f64,
    /// Confidence of the equivalence interval that must lie inside ±threshold for "unchanged" (0.90: two
    /// one-sided tests at 5%).
    pub equivalence_confidence: f64,
    /// Head run counts at which to look, strictly increasing; the last is the cap.
    pub looks: Vec<usize>,
    /// Runs in the baseline.
    pub base_runs: usize,
    /// Stop at the first confirmed regression (the check fails whatever the other functions say).
    pub stop_on_regression: bool,
    /// Base and head runs come in pairs (interleaved A/B): a look at `n` head runs has `n` base runs too.
    #[serde(default)]
    pub paired: bool,
}

impl Default for SequentialSettings {
    fn default() -> Self {
        SequentialSettings {
            alpha: 0.05,
            threshold: 0.05,
            equivalence_confidence: 0.90,
            looks: DEFAULT_LOOKS.to_vec(),
            base_runs: DEFAULT_BASE_RUNS,
            stop_on_regression: true,
            paired: false,
        }
    }
}

impl SequentialSettings {
    /// From the gate's settings: its alpha and threshold, looks from its `runs` (first look) to its
    /// `max_runs` (last) by [`schedule`], and the baseline's run count.
    pub fn from_gate(s: &GateSettings, base_runs: usize) -> SequentialSettings {
        SequentialSettings {
            alpha: s.alpha,
            threshold: s.threshold,
            looks: schedule(s.runs, s.max_runs.max(s.runs)),
            base_runs,
            ..SequentialSettings::default()
        }
    }

    /// Checks for values that make no sense; one line naming the setting.
    pub fn validate(&self) -> Result<()> {
        let unit = |v: f64| v.is_finite() && v > 0.0 && v < 1.0;
        if !unit(self.alpha) {
            bail!(
                "alpha = {}: must be between 0 and 1 (e.g. 0.05)",
                self.alpha
            );
        }
        if !(self.threshold.is_finite() && (0.0..=10.0).contains(&self.threshold)) {
            bail!(
                "threshold = {}: must be a fraction between 0 and 10",
                self.threshold
            );
        }
        if !unit(self.equivalence_confidence) {
            bail!(
                "equivalence confidence = {}: must be between 0 and 1 (e.g. 0.90)",
                self.equivalence_confidence
            );
        }
        if self.base_runs == 0 || self.base_runs > 10_000 {
            bail!("base runs = {}: must be 1 to 10000", self.base_runs);
        }
        if self.looks.is_empty() || self.looks.len() > MAX_LOOKS {
            bail!("looks: 1 to {MAX_LOOKS} head run counts are needed");
        }
        if self.looks[0] == 0
            || self.looks.windows(2).any(|w| w[0] >= w[1])
            || self.looks[self.looks.len() - 1] > 10_000
        {
            bail!(
                "looks {:?}: head run counts must be strictly increasing, from 1 to 10000",
                self.looks
            );
        }
        Ok(())
    }
}

/// Look schedule from `first` to `last` head runs: every 5 runs up to 20, every 10 up to 50, then about
/// half as many again each time (rounded up to tens), always ending at `last` (5 to 30 gives 5, 10, 15,
/// 20, 30; 1 to 10000 gives 21 looks). `first` is clamped into `1..=last`.
pub fn schedule(first: usize, last: usize) -> Vec<usize> {
    let last = last.max(1);
    let mut looks = vec![first.clamp(1, last)];
    loop {
        let at = looks[looks.len() - 1];
        let next = match at {
            // Round up to the step's grid (7 -> 10), so user schedules line up with the default.
            0..=19 => (at / 5 + 1) * 5,
            20..=49 => (at / 10 + 1) * 10,
            _ => (at * 3 / 2).div_ceil(10) * 10,
        };
        if next >= last {
            break;
        }
        looks.push(next);
    }
    if looks[looks.len() - 1] != last {
        looks.push(last);
    }
    looks
}

/// One look of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Look {
    /// Head runs at this look.
    pub head_runs: usize,
    /// Its information over the last look's.
    pub information_fraction: f64,
    /// Two-sided error spent by this look, cumulative: `α(t)`.
    pub spent: f64,
    /// Boundary of the standardised statistic (one side).
    pub boundary_z: f64,
    /// Nominal two-sided level of this look's tests: `2 (1 − Φ(boundary_z))`.
    pub alpha: f64,
    /// Confidence of this look's ratio intervals: `1 − alpha`.
    pub confidence: f64,
}

/// One function's figures at a look: its per-run values (normalised or not, the caller's choice) and the
/// threshold that applies to it.
#[derive(Debug, Clone, Copy)]
pub struct FunctionRuns<'a> {
    /// Per base run.
    pub base: &'a [f64],
    /// Per head run so far.
    pub head: &'a [f64],
    /// Smallest change that counts for this function (fraction).
    pub threshold: f64,
}

/// One function's decision at a look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDecision {
    /// Regressed, improved, unchanged or inconclusive.
    pub verdict: Verdict,
    /// Index of the look at which this verdict was first reached (`None` while inconclusive).
    pub decided_at: Option<usize>,
    /// Hodges–Lehmann estimate of head / base.
    pub ratio: Option<f64>,
    /// Lower end of the ratio's interval at [`FunctionDecision::confidence`].
    pub low: Option<f64>,
    /// Upper end of that interval.
    pub high: Option<f64>,
    /// Confidence of `low`/`high`: the look's.
    pub confidence: f64,
    /// Lower end of the equivalence interval.
    pub equivalence_low: Option<f64>,
    /// Upper end of the equivalence interval.
    pub equivalence_high: Option<f64>,
    /// Two-sided Mann–Whitney p-value.
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg q-value across the functions of this look.
    pub q_value: Option<f64>,
    /// Run-to-run noise measured on these runs, as a coefficient of variation (0.03 = 3%).
    pub cv: Option<f64>,
    /// The smallest ratio head / base this look would confirm as a regression with probability
    /// [`DETECTION_POWER`], given the measured noise and the run counts (see [`smallest_detectable`]).
    pub smallest_detectable: Option<f64>,
}

impl FunctionDecision {
    fn undecided(confidence: f64) -> FunctionDecision {
        FunctionDecision {
            verdict: Verdict::Inconclusive,
            decided_at: None,
            ratio: None,
            low: None,
            high: None,
            confidence,
            equivalence_low: None,
            equivalence_high: None,
            p_value: None,
            q_value: None,
            cv: None,
            smallest_detectable: None,
        }
    }
}

/// The rule with its boundaries computed.
#[derive(Debug, Clone, PartialEq)]
pub struct SequentialRule {
    settings: SequentialSettings,
    looks: Vec<Look>,
}

impl SequentialRule {
    /// Validates the settings and computes the looks' boundaries.
    pub fn new(settings: SequentialSettings) -> Result<SequentialRule> {
        settings.validate()?;
        let information: Vec<f64> = settings
            .looks
            .iter()
            .map(|&n| {
                let base = if settings.paired {
                    n
                } else {
                    settings.base_runs
                };
                1.0 / (1.0 / base as f64 + 1.0 / n as f64)
            })
            .collect();
        let last = information[information.len() - 1];
        let fractions: Vec<f64> = information.iter().map(|i| i / last).collect();
        let boundaries = obrien_fleming_boundaries(&fractions, settings.alpha);
        let looks = settings
            .looks
            .iter()
            .zip(&fractions)
            .zip(&boundaries)
            .map(|((&head_runs, &t), &c)| {
                let alpha = (2.0 * stats::normal_upper_tail(c)).min(1.0);
                Look {
                    head_runs,
                    information_fraction: t,
                    spent: spent(t, settings.alpha),
                    boundary_z: c,
                    alpha,
                    confidence: 1.0 - alpha,
                }
            })
            .collect();
        Ok(SequentialRule { settings, looks })
    }

    /// The settings.
    pub fn settings(&self) -> &SequentialSettings {
        &self.settings
    }

    /// The looks, in order.
    pub fn looks(&self) -> &[Look] {
        &self.looks
    }

    /// Runs to add to `head_runs` to reach the next look; `None` when `head_runs` is at or past the last.
    pub fn next_look(&self, head_runs: usize) -> Option<usize> {
        self.looks
            .iter()
            .find(|l| l.head_runs > head_runs)
            .map(|l| l.head_runs - head_runs)
    }

    /// Index of the look for `head_runs` runs: the last look at or below it (`None` before the first).
    pub fn look_at(&self, head_runs: usize) -> Option<usize> {
        self.looks.iter().rposition(|l| l.head_runs <= head_runs)
    }

    /// Whether the check stops after look `look` with these decisions: every function decided, a
    /// regression confirmed (when [`SequentialSettings::stop_on_regression`]), or the last look.
    pub fn should_stop(&self, look: usize, decisions: &[FunctionDecision]) -> bool {
        look + 1 >= self.looks.len()
            || decisions.iter().all(|d| d.verdict != Verdict::Inconclusive)
            || (self.settings.stop_on_regression
                && decisions.iter().any(|d| d.verdict == Verdict::Regressed))
    }

    /// Runs to add after look `look` at `head_runs` runs with these decisions; `None` = stop.
    pub fn runs_to_add(
        &self,
        look: usize,
        head_runs: usize,
        decisions: &[FunctionDecision],
    ) -> Option<usize> {
        if self.should_stop(look, decisions) {
            None
        } else {
            self.next_look(head_runs)
        }
    }

    /// The decisions at look `look` (an index into [`SequentialRule::looks`], clamped to the last) for
    /// every gated function, given the decisions of the previous look in the same order (`None` at the
    /// first look, or when the functions changed). The figures are per run and positive (times);
    /// Benjamini–Hochberg runs across all of `functions`.
    pub fn decide(
        &self,
        functions: &[FunctionRuns],
        look: usize,
        previous: Option<&[FunctionDecision]>,
    ) -> Vec<FunctionDecision> {
        let look_index = look.min(self.looks.len() - 1);
        let at = self.looks[look_index];
        let previous = previous.filter(|p| p.len() == functions.len());
        let mut decisions: Vec<FunctionDecision> =
            functions.iter().map(|f| self.measure(f, &at)).collect();
        let tested: Vec<(usize, f64)> = decisions
            .iter()
            .enumerate()
            .filter_map(|(i, d)| Some((i, d.p_value?)))
            .collect();
        let q = stats::benjamini_hochberg(&tested.iter().map(|&(_, p)| p).collect::<Vec<_>>());
        for (&(i, _), &q) in tested.iter().zip(&q) {
            decisions[i].q_value = Some(q);
        }
        for (i, (d, f)) in decisions.iter_mut().zip(functions).enumerate() {
            let before = previous.map(|p| &p[i]);
            if let Some(b) =
                before.filter(|b| matches!(b.verdict, Verdict::Regressed | Verdict::Improved))
            {
                // Final: kept as confirmed.
                *d = b.clone();
                continue;
            }
            d.verdict = verdict(d, f.threshold, at.alpha);
            if d.verdict == Verdict::Inconclusive {
                if let Some(b) = before.filter(|b| b.verdict == Verdict::Unchanged) {
                    d.verdict = Verdict::Unchanged;
                    d.decided_at = b.decided_at;
                    continue;
                }
            }
            d.decided_at = match (d.verdict, before) {
                (Verdict::Inconclusive, _) => None,
                (v, Some(b)) if b.verdict == v => b.decided_at,
                _ => Some(look_index),
            };
        }
        decisions
    }

    /// Everything about one function at a look but the verdict and the q-value.
    fn measure(&self, f: &FunctionRuns, at: &Look) -> FunctionDecision {
        let mut d = FunctionDecision::undecided(at.confidence);
        if f.base.is_empty() || f.head.is_empty() {
            return d;
        }
        d.p_value = stats::mann_whitney(f.base, f.head).map(|m| m.p_two_sided);
        let levels = [at.confidence, self.settings.equivalence_confidence];
        if let Some([r, eq]) = stats::ratio_estimates(f.base, f.head, &levels).as_deref() {
            d.ratio = Some(r.estimate);
            d.low = Some(r.low);
            d.high = Some(r.high);
            d.equivalence_low = Some(eq.low);
            d.equivalence_high = Some(eq.high);
        }
        d.cv = measured_cv(f.base, f.head);
        d.smallest_detectable = d
            .cv
            .map(|cv| smallest_detectable(cv, f.base.len(), f.head.len(), at.alpha, f.threshold));
        let (base_median, head_median) = (stats::median(f.base), stats::median(f.head));
        if d.ratio.is_none() && base_median.is_some() && base_median == head_median {
            // Zero times on both sides (no ratio): identical is unchanged, below.
            d.equivalence_low = Some(1.0);
            d.equivalence_high = Some(1.0);
        }
        d
    }
}

/// The verdict from a function's measured figures at a look of level `alpha`.
fn verdict(d: &FunctionDecision, threshold: f64, alpha: f64) -> Verdict {
    let up = 1.0 + threshold;
    let down = 1.0 / up;
    let significant = d.q_value.is_some_and(|q| q < alpha);
    if let (Some(low), Some(high)) = (d.low, d.high) {
        if significant && low > up {
            return Verdict::Regressed;
        }
        if significant && high < down {
            return Verdict::Improved;
        }
    }
    match (d.equivalence_low, d.equivalence_high) {
        (Some(low), Some(high)) if low >= down && high <= up => Verdict::Unchanged,
        _ => Verdict::Inconclusive,
    }
}

/// Run-to-run noise of positive per-run figures as a coefficient of variation: `exp(s) − 1` with `s` the
/// robust standard deviation of their logarithms (1.4826 × the median absolute deviation, each side about
/// its own median, pooled), so that a real difference between base and head does not count as noise and a
/// stray run does not dominate. `None` with fewer than 3 runs in all, or any figure not positive and finite.
pub fn measured_cv(base: &[f64], head: &[f64]) -> Option<f64> {
    if base.len() + head.len() < 3 || !base.iter().chain(head).all(|x| x.is_finite() && *x > 0.0) {
        return None;
    }
    let mut deviations = Vec::with_capacity(base.len() + head.len());
    for side in [base, head] {
        let logs: Vec<f64> = side.iter().map(|x| x.ln()).collect();
        if let Some(m) = stats::median(&logs) {
            deviations.extend(logs.iter().map(|l| (l - m).abs()));
        }
    }
    let s = 1.482_602_218_505_602 * stats::median(&deviations)?;
    Some(s.exp_m1())
}

/// The smallest ratio head / base that a look with `base_runs` and `head_runs` runs, at two-sided level
/// `alpha`, confirms as a regression beyond `threshold` with probability [`DETECTION_POWER`], for noise
/// `cv` per run: `(1 + threshold) · exp((z_{1−α/2} + z_power) · s · √(π/3 · (1/n_base + 1/n_head)))`,
/// `s = ln(1 + cv)`. Normal theory for one function alone: π/3 is the variance of the Hodges–Lehmann
/// estimate relative to the mean's for normal noise, and the Benjamini–Hochberg adjustment across
/// functions is left out (it matters only when one function alone is significant among many at a tight
/// look). Infinite when a count is zero.
pub fn smallest_detectable(
    cv: f64,
    base_runs: usize,
    head_runs: usize,
    alpha: f64,
    threshold: f64,
) -> f64 {
    if base_runs == 0 || head_runs == 0 {
        return f64::INFINITY;
    }
    let s = cv.max(0.0).ln_1p();
    let z = stats::normal_quantile(1.0 - alpha / 2.0) + stats::normal_quantile(DETECTION_POWER);
    let se =
        s * (std::f64::consts::PI / 3.0 * (1.0 / base_runs as f64 + 1.0 / head_runs as f64)).sqrt();
    (1.0 + threshold) * (z * se).exp()
}

/// Two-sided error spent by information fraction `t` (O'Brien–Fleming type, Lan–DeMets):
/// `2 − 2 Φ(z_{α/2} / √t)`.
pub fn spent(t: f64, alpha: f64) -> f64 {
    if t.is_nan() || t <= 0.0 {
        return 0.0;
    }
    if t >= 1.0 {
        // Exactly alpha (the formula's round trip through Φ⁻¹ is off by ~1e-12).
        return alpha;
    }
    let z = stats::normal_quantile(1.0 - alpha / 2.0);
    (2.0 * stats::normal_upper_tail(z / t.min(1.0).sqrt())).min(alpha)
}

/// Lower end of the integration grid: the density of a standard normal below it is < 1e-14.
const GRID_FLOOR: f64 = -8.0;

/// Largest grid step, in standard deviations of the statistic.
const GRID_STEP: f64 = 0.02;

/// One-sided group-sequential boundaries `c_1..c_K` for looks at information fractions `fractions`
/// (increasing, the last 1): under the null, `P(Z_1 < c_1, …, Z_{k−1} < c_{k−1}, Z_k ≥ c_k)` is
/// `(spent(t_k) − spent(t_{k−1})) / 2`, with `Z_k` jointly normal, `corr(Z_j, Z_k) = √(t_j / t_k)`.
///
/// Armitage–McPherson–Rowe: carry the sub-density of `Z_k` on the continuation region `(−∞, c_k)` from
/// look to look, `g_k(z) = ∫ g_{k−1}(u) φ((z − r u)/s) / s du` with `r = √(t_{k−1}/t_k)`,
/// `s = √(1 − r²)`, by Simpson's rule on a grid from [`GRID_FLOOR`] to `c_k`; `c_k` by bisection on the
/// crossing probability `∫ g_{k−1}(u) Q((c − r u)/s) du`. With the default step the boundaries agree with an
/// independent multivariate-normal computation to about 1e-4.
fn obrien_fleming_boundaries(fractions: &[f64], alpha: f64) -> Vec<f64> {
    let mut boundaries = Vec::with_capacity(fractions.len());
    // Grid points and the sub-density there, with Simpson weights folded in.
    let mut points: Vec<f64> = Vec::new();
    let mut weighted: Vec<f64> = Vec::new();
    let mut previous_t = 0.0;
    for &t in fractions {
        let share = ((spent(t, alpha) - spent(previous_t, alpha)) / 2.0).max(0.0);
        if boundaries.is_empty() {
            let c = stats::normal_quantile(1.0 - share);
            boundaries.push(c);
            let (p, w) = simpson_grid(c, GRID_STEP);
            weighted = p
                .iter()
                .zip(&w)
                .map(|(z, w)| w * normal_density(*z))
                .collect();
            points = p;
        } else {
            let r = (previous_t / t).sqrt();
            let s = (1.0 - r * r).sqrt();
            let crossing = |c: f64| -> f64 {
                points
                    .iter()
                    .zip(&weighted)
                    .map(|(u, w)| w * stats::normal_upper_tail((c - r * u) / s))
                    .sum()
            };
            let c = if share <= 0.0 {
                f64::INFINITY
            } else {
                // Crossing falls from ~1/2 of the remaining mass at 0 to 0 far up.
                let (mut lo, mut hi) = (0.0_f64, 40.0_f64);
                for _ in 0..60 {
                    let mid = 0.5 * (lo + hi);
                    if crossing(mid) > share {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                0.5 * (lo + hi)
            };
            boundaries.push(c);
            if c.is_finite() {
                // Fine enough for the narrowest conditional density; bounded so a schedule of
                // nearly equal looks cannot make the grid huge (n² work per look).
                let (p, w) = simpson_grid(c, GRID_STEP.min(s / 8.0).max(2e-3));
                let next: Vec<f64> = p
                    .iter()
                    .zip(&w)
                    .map(|(z, wz)| {
                        let density: f64 = points
                            .iter()
                            .zip(&weighted)
                            .map(|(u, wu)| wu * normal_density((z - r * u) / s))
                            .sum::<f64>()
                            / s;
                        wz * density
                    })
                    .collect();
                points = p;
                weighted = next;
            }
        }
        previous_t = t;
    }
    boundaries
}

/// Points and Simpson weights on `[GRID_FLOOR, top]` with a step of at most `step` (an even number of
/// intervals, the last point exactly `top`).
fn simpson_grid(top: f64, step: f64) -> (Vec<f64>, Vec<f64>) {
    let span = (top - GRID_FLOOR).max(step);
    let mut n = (span / step).ceil() as usize;
    n = n.clamp(2, 100_000);
    if n % 2 == 1 {
        n += 1;
    }
    let h = span / n as f64;
    let points = (0..=n).map(|i| GRID_FLOOR + i as f64 * h).collect();
    let weights = (0..=n)
        .map(|i| {
            let k = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            k * h / 3.0
        })
        .collect();
    (points, weights)
}

/// Standard normal density.
fn normal_density(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn near(actual: f64, expected: f64, tol: f64) {
        assert!(
            (actual - expected).abs() <= tol,
            "actual {actual} vs expected {expected}"
        );
    }

    fn rule() -> SequentialRule {
        SequentialRule::new(SequentialSettings::default()).unwrap()
    }

    // Reference boundaries: an independent computation with scipy 1.17.1's multivariate normal CDF (Genz),
    // solving P(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}) - P(Z_1 < c_1, ..., Z_k < c_k) = (spent(t_k) - spent(t_{k-1}))/2
    // for c_k by brentq, corr(Z_i, Z_j) = sqrt(t_i / t_j), spent(t) = 2 - 2 Phi(z_{0.025} / sqrt(t)).

    #[test]
    fn boundaries_equally_spaced_against_reference() {
        // t = 0.2, 0.4, 0.6, 0.8, 1 -> [4.3826, 3.0997, 2.5534, 2.2538, 2.0635]
        let b = obrien_fleming_boundaries(&[0.2, 0.4, 0.6, 0.8, 1.0], 0.05);
        for (c, e) in b.iter().zip([4.3826, 3.0997, 2.5534, 2.2538, 2.0635]) {
            near(*c, e, 2e-4);
        }
    }

    #[test]
    fn boundaries_of_the_default_schedule_against_reference() {
        // t = 2/7, 1/2, 2/3, 4/5, 1 (30 base runs, 5..30 head runs)
        //   -> [3.6667568602829332, 2.777566117262254, 2.4479935120186442, 2.2843571337012745, 2.06699544368421]
        //   two-sided nominal [0.000245646159560, 0.00547676963334, 0.0143654242337, 0.0223505506630, 0.0387345832929]
        let looks = rule().looks().to_vec();
        for (l, (c, a)) in looks.iter().zip([
            (3.6667568602829332, 0.000245646159560),
            (2.777566117262254, 0.00547676963334),
            (2.4479935120186442, 0.0143654242337),
            (2.2843571337012745, 0.0223505506630),
            (2.06699544368421, 0.0387345832929),
        ]) {
            near(l.boundary_z, c, 1e-5);
            near(l.alpha, a, 1e-6);
        }
    }

    #[test]
    fn one_look_is_the_fixed_sample_test() {
        let r = SequentialRule::new(SequentialSettings {
            looks: vec![30],
            ..Default::default()
        })
        .unwrap();
        let l = r.looks()[0];
        near(l.boundary_z, 1.959964, 1e-5);
        near(l.confidence, 0.95, 1e-9);
        near(l.spent, 0.05, 1e-12);
    }

    #[test]
    fn looks_spend_little_early_and_most_late() {
        let looks = rule().looks().to_vec();
        assert_eq!(
            looks.iter().map(|l| l.head_runs).collect::<Vec<_>>(),
            DEFAULT_LOOKS
        );
        // Information 1/(1/30 + 1/n) over the last look's (15).
        for (l, t) in looks.iter().zip([2.0 / 7.0, 0.5, 2.0 / 3.0, 0.8, 1.0]) {
            near(l.information_fraction, t, 1e-12);
        }
        // spent(t) = 2 - 2 Phi(1.959964 / sqrt(t)): scipy 2*norm.sf(norm.ppf(0.975)/sqrt(t)).
        for (l, e) in looks.iter().zip([
            0.00024564615958,
            0.0055745966805,
            0.016374666449,
            0.028429630752,
            0.05,
        ]) {
            near(l.spent, e, 1e-9);
        }
        // Levels rise look by look; the last is below alpha (earlier looks spent some).
        assert!(looks.windows(2).all(|w| w[0].alpha < w[1].alpha));
        assert!(
            looks[4].alpha < 0.05 && looks[4].alpha > 0.035,
            "{:?}",
            looks[4]
        );
        // The first look's level equals what it spends (nothing before it).
        near(looks[0].alpha, looks[0].spent, 1e-12);
        // Summed nominal levels bound the total error (union bound), and are not far above alpha.
        let sum: f64 = looks.iter().map(|l| l.alpha).sum();
        assert!(sum > 0.05 && sum < 0.09, "{sum}");
    }

    #[test]
    fn schedule_steps_by_5_then_10_and_ends_at_the_cap() {
        assert_eq!(schedule(5, 30), [5, 10, 15, 20, 30]);
        assert_eq!(schedule(10, 30), [10, 15, 20, 30]);
        assert_eq!(schedule(5, 50), [5, 10, 15, 20, 30, 40, 50]);
        assert_eq!(
            schedule(5, 200),
            [5, 10, 15, 20, 30, 40, 50, 80, 120, 180, 200]
        );
        let long = schedule(1, 10_000);
        assert_eq!(long.len(), 21, "{long:?}");
        assert!(SequentialRule::new(SequentialSettings {
            looks: long,
            base_runs: 10_000,
            ..Default::default()
        })
        .is_ok());
        assert_eq!(schedule(7, 22), [7, 10, 15, 20, 22]);
        assert_eq!(schedule(30, 30), [30]);
        assert_eq!(schedule(0, 3), [1, 3]);
        assert_eq!(schedule(40, 30), [30]);
        let g = GateSettings {
            runs: 5,
            max_runs: 30,
            ..Default::default()
        };
        let s = SequentialSettings::from_gate(&g, 30);
        assert_eq!(s, SequentialSettings::default());
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let bad = |s: SequentialSettings, word: &str| {
            let e = SequentialRule::new(s).unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        };
        let d = SequentialSettings::default;
        bad(SequentialSettings { alpha: 0.0, ..d() }, "alpha");
        bad(
            SequentialSettings {
                threshold: f64::NAN,
                ..d()
            },
            "threshold",
        );
        bad(
            SequentialSettings {
                equivalence_confidence: 1.0,
                ..d()
            },
            "equivalence",
        );
        bad(
            SequentialSettings {
                base_runs: 0,
                ..d()
            },
            "base runs",
        );
        bad(
            SequentialSettings {
                looks: vec![],
                ..d()
            },
            "looks",
        );
        bad(
            SequentialSettings {
                looks: vec![5, 5, 10],
                ..d()
            },
            "increasing",
        );
        bad(
            SequentialSettings {
                looks: vec![0, 5],
                ..d()
            },
            "increasing",
        );
    }

    #[test]
    fn next_look_and_look_at_follow_the_schedule() {
        let r = rule();
        assert_eq!(r.next_look(0), Some(5));
        assert_eq!(r.next_look(5), Some(5));
        assert_eq!(r.next_look(12), Some(3));
        assert_eq!(r.next_look(20), Some(10));
        assert_eq!(r.next_look(30), None);
        assert_eq!(r.next_look(31), None);
        assert_eq!(r.look_at(4), None);
        assert_eq!(r.look_at(5), Some(0));
        assert_eq!(r.look_at(29), Some(3));
        assert_eq!(r.look_at(30), Some(4));
        assert_eq!(r.look_at(99), Some(4));
    }

    /// Deterministic ±2% jitter around `level`.
    fn runs(level: f64, n: usize, seed: u64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let h = (i as u64 * 7919 + seed * 104_729) % 41;
                level * (1.0 + (h as f64 - 20.0) / 1000.0)
            })
            .collect()
    }

    fn functions<'a>(pairs: &'a [(Vec<f64>, Vec<f64>)]) -> Vec<FunctionRuns<'a>> {
        pairs
            .iter()
            .map(|(b, h)| FunctionRuns {
                base: b,
                head: h,
                threshold: 0.05,
            })
            .collect()
    }

    #[test]
    fn a_clear_regression_is_confirmed_and_the_rest_unchanged() {
        let r = rule();
        let data: Vec<(Vec<f64>, Vec<f64>)> = (0..6)
            .map(|f| {
                let level = 100.0 * (f + 1) as f64;
                let slow = if f == 0 { 1.25 } else { 1.0 };
                (runs(level, 30, f), runs(level * slow, 10, f + 10))
            })
            .collect();
        let d = r.decide(&functions(&data), 1, None);
        assert_eq!(d[0].verdict, Verdict::Regressed, "{:?}", d[0]);
        assert_eq!(d[0].decided_at, Some(1));
        assert!(d[0].low.unwrap() > 1.05 && d[0].ratio.unwrap() > 1.2);
        assert!(d[0].q_value.unwrap() < r.looks()[1].alpha);
        for x in &d[1..] {
            assert_eq!(x.verdict, Verdict::Unchanged, "{x:?}");
            assert!(
                x.equivalence_low.unwrap() >= 1.0 / 1.05 && x.equivalence_high.unwrap() <= 1.05
            );
        }
        assert!(r.should_stop(1, &d));
        assert_eq!(r.runs_to_add(1, 10, &d), None);
        // Without stopping on a regression: all decided, so it stops all the same.
        let r2 = SequentialRule::new(SequentialSettings {
            stop_on_regression: false,
            ..Default::default()
        })
        .unwrap();
        assert!(r2.should_stop(1, &r2.decide(&functions(&data), 1, None)));
    }

    #[test]
    fn an_improvement_is_confirmed_too() {
        let data = vec![(runs(100.0, 30, 1), runs(70.0, 15, 2))];
        let d = rule().decide(&functions(&data), 2, None);
        assert_eq!(d[0].verdict, Verdict::Improved, "{:?}", d[0]);
    }

    #[test]
    fn the_first_look_is_cautious() {
        // A 7% regression on 5 head runs, every head run above every base run: OBF's first look needs
        // the whole (widest) interval above 1.05, which these runs cannot give.
        let data = vec![(runs(100.0, 30, 1), runs(107.0, 5, 2))];
        let r = rule();
        let d = r.decide(&functions(&data), 0, None);
        assert_eq!(d[0].verdict, Verdict::Inconclusive, "{:?}", d[0]);
        assert!(d[0].confidence > 0.999);
        assert!(!r.should_stop(0, &d));
        assert_eq!(r.runs_to_add(0, 5, &d), Some(5));
        // The same data judged at the last look's level would pass the test (p alone).
        assert!(d[0].p_value.unwrap() < r.looks()[4].alpha);
    }

    #[test]
    fn confirmed_verdicts_are_final_and_unchanged_is_sticky() {
        let r = rule();
        let regressed = vec![(runs(100.0, 30, 1), runs(130.0, 10, 2))];
        let d1 = r.decide(&functions(&regressed), 1, None);
        assert_eq!(d1[0].verdict, Verdict::Regressed);
        // Later runs that alone would say nothing: the regression stays, as confirmed.
        let muddled = vec![(runs(100.0, 30, 1), runs(105.0, 15, 3))];
        let d2 = r.decide(&functions(&muddled), 2, Some(&d1));
        assert_eq!(d2[0], d1[0]);
        // Unchanged at look 1; later runs inconclusive on their own: stays unchanged, decided at look 1.
        let same = vec![(runs(100.0, 30, 1), runs(100.0, 10, 4))];
        let u1 = r.decide(&functions(&same), 1, None);
        assert_eq!(u1[0].verdict, Verdict::Unchanged, "{:?}", u1[0]);
        let u2 = r.decide(&functions(&muddled), 2, Some(&u1));
        assert_eq!(u2[0].verdict, Verdict::Unchanged);
        assert_eq!(u2[0].decided_at, Some(1));
        assert_eq!(
            r.decide(&functions(&muddled), 2, None)[0].verdict,
            Verdict::Inconclusive
        );
        // ...but a regression confirmed later overrides it.
        let u3 = r.decide(&functions(&regressed), 2, Some(&u1));
        assert_eq!(u3[0].verdict, Verdict::Regressed);
        assert_eq!(u3[0].decided_at, Some(2));
        // Previous decisions of another length are ignored.
        let two = vec![same[0].clone(), same[0].clone()];
        assert_eq!(
            r.decide(&functions(&two), 2, Some(&d1))[0].decided_at,
            Some(2)
        );
    }

    #[test]
    fn benjamini_hochberg_runs_across_the_functions() {
        let r = rule();
        let data: Vec<(Vec<f64>, Vec<f64>)> = (0..8)
            .map(|f| (runs(100.0, 30, f), runs(100.0 + f as f64, 20, f + 50)))
            .collect();
        let d = r.decide(&functions(&data), 3, None);
        let p: Vec<f64> = d.iter().map(|x| x.p_value.unwrap()).collect();
        let q = stats::benjamini_hochberg(&p);
        for (x, q) in d.iter().zip(q) {
            assert_eq!(x.q_value, Some(q));
        }
    }

    #[test]
    fn unusable_figures_are_inconclusive_without_numbers() {
        let r = rule();
        let data = vec![
            (vec![], vec![1.0; 5]),
            (vec![0.0; 30], vec![0.0; 5]),
            (vec![1.0, f64::NAN], vec![1.0; 5]),
            (vec![0.0; 30], vec![1.0; 5]),
        ];
        let d = r.decide(&functions(&data), 0, None);
        assert_eq!(d[0].verdict, Verdict::Inconclusive);
        assert_eq!(d[0].p_value, None);
        // Zero on both sides: identical, unchanged.
        assert_eq!(d[1].verdict, Verdict::Unchanged, "{:?}", d[1]);
        assert_eq!(d[2].verdict, Verdict::Inconclusive);
        assert_eq!(d[2].ratio, None);
        assert_eq!(d[3].verdict, Verdict::Inconclusive);
        // Look index past the end is clamped to the last look.
        assert_eq!(
            r.decide(&functions(&data[1..2]), 99, None)[0].confidence,
            r.looks()[4].confidence
        );
    }

    #[test]
    fn measured_cv_is_robust_and_ignores_the_shift() {
        // ln-values with MAD 0.02 around each side's median: s = 1.4826 * 0.02.
        let base: Vec<f64> = [-0.02, 0.0, 0.02, -0.02, 0.02, 0.0, 5.0]
            .iter()
            .map(|x: &f64| x.exp())
            .collect();
        let head: Vec<f64> = [0.28, 0.30, 0.32, 0.28, 0.32, 0.30]
            .iter()
            .map(|x: &f64| x.exp())
            .collect();
        let cv = measured_cv(&base, &head).unwrap();
        near(cv, (1.482_602_218_505_602 * 0.02_f64).exp_m1(), 1e-9);
        assert_eq!(measured_cv(&[1.0], &[1.0]), None);
        assert_eq!(measured_cv(&[1.0, 0.0], &[1.0]), None);
        assert_eq!(measured_cv(&[2.0; 5], &[2.0; 5]), Some(0.0));
    }

    #[test]
    fn smallest_detectable_shrinks_with_runs_and_grows_with_noise() {
        let e = |cv, n| smallest_detectable(cv, 30, n, 0.0387, 0.05);
        assert!(e(0.03, 10) > e(0.03, 20) && e(0.03, 20) > e(0.03, 30));
        assert!(e(0.05, 30) > e(0.03, 30));
        near(e(0.0, 30), 1.05, 1e-12);
        // (1.05) exp((z_0.98065 + z_0.8) ln(1.03) sqrt(pi/3 * 2/30)): 2.0670 + 0.8416 = 2.9086.
        let z = stats::normal_quantile(1.0 - 0.0387 / 2.0) + stats::normal_quantile(0.8);
        near(z, 2.9086, 1e-3);
        near(
            e(0.03, 30),
            1.05 * (z * 1.03_f64.ln() * (std::f64::consts::PI / 45.0).sqrt()).exp(),
            1e-12,
        );
        assert_eq!(smallest_detectable(0.03, 0, 5, 0.05, 0.05), f64::INFINITY);
    }
}
