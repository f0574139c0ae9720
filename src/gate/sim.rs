//! A seeded simulation of whole checks, to measure (not assume) what a gate design does: how often it fails
//! a pull request that changed nothing (false alarms), how often it catches one function slowed by 5, 10
//! or 20%, how many head runs it costs, and how often it gives up inconclusive at the cap.
//!
//! The model of a benchmark (per run `r`, function `f`), on the log scale:
//! `ln x = ln μ_f + m_r + a_r + ε_{r,f}` (+ `shift_f` on the head machine, + `ln(1 + effect)` for the slowed
//! function in head runs), with
//! * `ε_{r,f} ~ N(0, cv²)`: each function's own run-to-run noise (lognormal);
//! * `m_r ~ N(0, run_noise²)`: the whole run faster or slower (frequency, a neighbour), common to all
//!   functions of the run;
//! * `a_r`: slow drift, AR(1) with coefficient `drift_phi` and stationary standard deviation `drift_sd`,
//!   common to all functions; base and head runs are separate stretches of it (recorded on other days);
//! * `shift_f ~ U(−machine_shift, +machine_shift)`: the baseline came from another machine, on which each
//!   function is a little faster or slower in its own way (drawn once per baseline; normalisation cannot
//!   remove it, only the threshold absorbs it).
//!
//! Every function is gated (no share floor), figures are what the gate compares (per-run means), and the
//! same random draws serve every design and every effect (common random numbers), so differences between
//! rows are the designs', not the luck's.
//!
//! Measured with [`Noise::default`] (CV 3%, whole-run noise 2%, AR(1) drift 2% with φ = 0.9, ±2% machine
//! shift, 20 functions), 300 baselines × 20 checks per cell, seed 1 (`print_table`, release, ~2 minutes):
//!
//! | design | false alarms | +5% | +10% | +20% | mean head runs (A/A) | inconclusive at cap (A/A) |
//! |---|---|---|---|---|---|---|
//! | today: 10 base, 10+5..30 head, α each look | 2.6% | 12.8% | 72.4% | 100% | 30.0 | 97.0% |
//! | today `--relative` | 0.0% | 2.9% | 81.0% | 100% | 30.0 | 99.1% |
//! | **sequential normalised, 30 base, looks 5..30** | 0.0% | 9.8% | 97.6% | 100% | 16.1 | 5.3% |
//! | sequential absolute, 30 base | 2.4% | 19.2% | 86.5% | 100% | 26.5 | 59.1% |
//! | sequential normalised, 10 base | 0.0% | 4.7% | 87.4% | 100% | 26.2 | 57.0% |
//!
//! Without the machine shift the new default needs 10.6 head runs on average and catches every +10%
//! (`print_scenarios`): the shift, which nothing can tell from a real change, is what costs the runs.
//!
//! Invariants: pure and deterministic for a seed (own PRNG, no I/O, no clock); nothing here is used by a
//! check, only by tests and the bench that prints [`table`].
use super::model::Verdict;
use super::normalize::{run_factors, Normalisation};
use super::sequential::{FunctionDecision, FunctionRuns, SequentialRule, SequentialSettings};
use super::stats;

/// Small, fast, seedable PRNG (xoshiro256**, seeded through SplitMix64); statistical quality far beyond
/// what a simulation of a few thousand checks can see.
#[derive(Debug, Clone)]
pub struct Rng {
    state: [u64; 4],
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            state: [next(), next(), next(), next()],
            spare_normal: None,
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Marsaglia's polar method).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let k = (-2.0 * s.ln() / s).sqrt();
                self.spare_normal = Some(v * k);
                return u * k;
            }
        }
    }
}

/// The benchmark's noise; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// Gated functions.
    pub functions: usize,
    /// Each function's own run-to-run noise (log-scale standard deviation, ≈ CV).
    pub cv: f64,
    /// Whole-run noise common to all functions.
    pub run_noise: f64,
    /// Stationary standard deviation of the slow drift.
    pub drift_sd: f64,
    /// AR(1) coefficient of the drift from one run to the next.
    pub drift_phi: f64,
    /// Half-width of the uniform per-function shift of the head machine against the baseline's.
    pub machine_shift: f64,
}

impl Default for Noise {
    /// The scenario: 20 functions, CV 3% each, with drift, baseline from another machine (±2%).
    fn default() -> Self {
        Noise {
            functions: 20,
            cv: 0.03,
            run_noise: 0.02,
            drift_sd: 0.02,
            drift_phi: 0.9,
            machine_shift: 0.02,
        }
    }
}

/// A gate design to simulate.
#[derive(Debug, Clone, PartialEq)]
pub enum Design {
    /// The rule of `compare.rs` before the second design: `runs` head runs, then 5 more at a time while any
    /// function is inconclusive, up to `max_runs`; every look at full `alpha` (BH across functions, 95%
    /// Hodges–Lehmann interval beyond ±5%); optionally `--relative` (head figures divided by the median
    /// over functions of head/base medians).
    Today {
        /// Runs in the baseline.
        base_runs: usize,
        /// Head runs before the first look.
        runs: usize,
        /// Head runs at most.
        max_runs: usize,
        /// `--relative`.
        relative: bool,
    },
    /// The group-sequential rule of [`super::sequential`], with or without per-run normalisation.
    Sequential {
        /// Its settings (base runs included).
        settings: SequentialSettings,
        /// Per-run normalisation ([`super::normalize`]) of base and head runs.
        normalise: bool,
    },
}

impl Design {
    /// Today's rule with today's defaults (10 base runs, 10 head runs, up to 30), absolute.
    pub fn today() -> Design {
        Design::Today {
            base_runs: 10,
            runs: 10,
            max_runs: 30,
            relative: false,
        }
    }

    /// The new default: per-run normalisation, 30 base runs, looks at 5, 10, 15, 20, 30.
    pub fn new_default() -> Design {
        Design::Sequential {
            settings: SequentialSettings::default(),
            normalise: true,
        }
    }

    /// Short label for tables.
    pub fn label(&self) -> String {
        match self {
            Design::Today {
                base_runs,
                runs,
                max_runs,
                relative,
            } => format!(
                "today{}: {base_runs} base, {runs}+5..{max_runs} head, α each look",
                if *relative { " --relative" } else { "" }
            ),
            Design::Sequential {
                settings,
                normalise,
            } => format!(
                "sequential{}: {} base, looks {:?}",
                if *normalise {
                    " normalised"
                } else {
                    " absolute"
                },
                settings.base_runs,
                settings.looks
            ),
        }
    }

    fn base_runs(&self) -> usize {
        match self {
            Design::Today { base_runs, .. } => *base_runs,
            Design::Sequential { settings, .. } => settings.base_runs,
        }
    }

    fn max_head_runs(&self) -> usize {
        match self {
            Design::Today { max_runs, runs, .. } => (*max_runs).max(*runs),
            Design::Sequential { settings, .. } => {
                settings.looks.iter().copied().max().unwrap_or(0)
            }
        }
    }
}

/// What one simulated check ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOutcome {
    /// The slowed function (function 0) was found regressed.
    pub slowed_regressed: bool,
    /// Some other function was found regressed: a false alarm.
    pub other_regressed: bool,
    /// Head runs made.
    pub head_runs: usize,
    /// Ended without any regression but with some function inconclusive (at the cap).
    pub undecided: bool,
}

/// Counts over the checks of one design at one effect.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EffectCounts {
    /// Slowdown of function 0 in the head runs (0 = A/A).
    pub effect: f64,
    /// Checks simulated.
    pub checks: usize,
    /// Checks that found function 0 regressed.
    pub slowed_regressed: usize,
    /// Checks that found any other function regressed.
    pub false_alarms: usize,
    /// Checks that found any function regressed, function 0 included.
    pub any_regressed: usize,
    /// Head runs made, summed.
    pub head_runs: usize,
    /// Checks that ended undecided at the cap.
    pub undecided: usize,
}

impl EffectCounts {
    /// Share of checks with a false alarm (for the A/A row: any function regressed).
    pub fn false_alarm_rate(&self) -> f64 {
        self.alarms() as f64 / self.checks.max(1) as f64
    }

    /// Checks with a false alarm: any other function regressed, or, when nothing was slowed, any function.
    pub fn alarms(&self) -> usize {
        if self.effect == 0.0 {
            self.any_regressed
        } else {
            self.false_alarms
        }
    }

    /// Share of checks that caught the slowed function.
    pub fn detection_rate(&self) -> f64 {
        self.slowed_regressed as f64 / self.checks.max(1) as f64
    }

    /// Mean head runs per check.
    pub fn mean_head_runs(&self) -> f64 {
        self.head_runs as f64 / self.checks.max(1) as f64
    }

    /// Share of checks undecided at the cap.
    pub fn undecided_rate(&self) -> f64 {
        self.undecided as f64 / self.checks.max(1) as f64
    }
}

/// One design's results, one entry per effect in the order asked.
#[derive(Debug, Clone, PartialEq)]
pub struct DesignResult {
    /// [`Design::label`].
    pub design: String,
    /// Per effect.
    pub effects: Vec<EffectCounts>,
}

/// How much to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The benchmark's noise.
    pub noise: Noise,
    /// Baselines recorded (each with its own machine shift and base runs).
    pub baselines: usize,
    /// Checks against each baseline (fresh head runs each).
    pub checks_per_baseline: usize,
    /// Slowdowns of function 0 to simulate (0 = A/A).
    pub effects: Vec<f64>,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            noise: Noise::default(),
            baselines: 100,
            checks_per_baseline: 10,
            effects: vec![0.0, 0.05, 0.10, 0.20],
            seed: 1,
        }
    }
}

/// Function-major figures: `runs[f][r]`.
type Figures = Vec<Vec<f64>>;

/// Draws `runs` runs of every function on one machine: levels `ln_levels` (per function, shift included),
/// one AR(1) stretch starting from its stationary distribution.
fn draw_runs(rng: &mut Rng, noise: &Noise, ln_levels: &[f64], runs: usize) -> Figures {
    let innovation = noise.drift_sd * (1.0 - noise.drift_phi * noise.drift_phi).max(0.0).sqrt();
    let mut drift = noise.drift_sd * rng.normal();
    let mut out = vec![Vec::with_capacity(runs); ln_levels.len()];
    for _ in 0..runs {
        drift = noise.drift_phi * drift + innovation * rng.normal();
        let whole_run = noise.run_noise * rng.normal() + drift;
        for (f, level) in ln_levels.iter().enumerate() {
            out[f].push((level + whole_run + noise.cv * rng.normal()).exp());
        }
    }
    out
}

/// Simulates every design on the same draws. Work: `baselines × checks × designs × effects` checks.
pub fn simulate(designs: &[Design], config: &SimConfig) -> Vec<DesignResult> {
    let noise = &config.noise;
    let mut rng = Rng::new(config.seed);
    let rules: Vec<Option<SequentialRule>> = designs
        .iter()
        .map(|d| match d {
            Design::Sequential { settings, .. } => SequentialRule::new(settings.clone()).ok(),
            Design::Today { .. } => None,
        })
        .collect();
    let base_runs = designs.iter().map(Design::base_runs).max().unwrap_or(0);
    let head_runs = designs.iter().map(Design::max_head_runs).max().unwrap_or(0);
    let mut results: Vec<DesignResult> = designs
        .iter()
        .map(|d| DesignResult {
            design: d.label(),
            effects: config
                .effects
                .iter()
                .map(|&effect| EffectCounts {
                    effect,
                    ..Default::default()
                })
                .collect(),
        })
        .collect();
    for _ in 0..config.baselines {
        // Levels from 100 ns to 100 µs, log-uniform; the head machine's own per-function shift.
        let ln_levels: Vec<f64> = (0..noise.functions)
            .map(|_| (100.0_f64).ln() + rng.uniform() * (1000.0_f64).ln())
            .collect();
        let shifted: Vec<f64> = ln_levels
            .iter()
            .map(|l| l + noise.machine_shift * (2.0 * rng.uniform() - 1.0))
            .collect();
        let base = draw_runs(&mut rng, noise, &ln_levels, base_runs);
        for _ in 0..config.checks_per_baseline {
            let head = draw_runs(&mut rng, noise, &shifted, head_runs);
            for (e, &effect) in config.effects.iter().enumerate() {
                let mut head = head.clone();
                if let Some(slowed) = head.first_mut() {
                    slowed.iter_mut().for_each(|x| *x *= 1.0 + effect);
                }
                for (d, design) in designs.iter().enumerate() {
                    let outcome = run_check(design, rules[d].as_ref(), &base, &head);
                    let counts = &mut results[d].effects[e];
                    counts.checks += 1;
                    counts.slowed_regressed += usize::from(outcome.slowed_regressed);
                    counts.false_alarms += usize::from(outcome.other_regressed);
                    counts.any_regressed +=
                        usize::from(outcome.other_regressed || outcome.slowed_regressed);
                    counts.head_runs += outcome.head_runs;
                    counts.undecided += usize::from(outcome.undecided);
                }
            }
        }
    }
    results
}

/// One check of `design` against `base` (function-major, at least the design's base runs) with head runs
/// taken from `head` as the design asks for them.
pub fn run_check(
    design: &Design,
    rule: Option<&SequentialRule>,
    base: &Figures,
    head: &Figures,
) -> CheckOutcome {
    match design {
        Design::Today {
            base_runs,
            runs,
            max_runs,
            relative,
        } => {
            let base = first_runs(base, *base_runs);
            let mut n = *runs;
            loop {
                let verdicts = today_verdicts(&base, &first_runs(head, n), *relative);
                if !verdicts.contains(&Verdict::Inconclusive) || n >= *max_runs {
                    return CheckOutcome::of(&verdicts, n);
                }
                n += 5.min(max_runs - n);
            }
        }
        Design::Sequential {
            settings,
            normalise,
        } => match rule {
            Some(rule) => sequential_check(settings, *normalise, rule, base, head),
            None => CheckOutcome::of(&[], 0),
        },
    }
}

/// A check under the group-sequential rule: looks at its schedule until it stops.
fn sequential_check(
    settings: &SequentialSettings,
    normalise: bool,
    rule: &SequentialRule,
    base: &Figures,
    head: &Figures,
) -> CheckOutcome {
    let base = first_runs(base, settings.base_runs);
    let mut n = settings.looks.first().copied().unwrap_or(1);
    let mut look = 0;
    let mut previous: Option<Vec<FunctionDecision>> = None;
    loop {
        let head_now = first_runs(head, n);
        let (b, h) = if normalise {
            normalised(&base, &head_now)
        } else {
            (base.clone(), head_now)
        };
        let functions: Vec<FunctionRuns> = b
            .iter()
            .zip(&h)
            .map(|(b, h)| FunctionRuns {
                base: b,
                head: h,
                threshold: settings.threshold,
            })
            .collect();
        let decisions = rule.decide(&functions, look, previous.as_deref());
        match rule.runs_to_add(look, n, &decisions) {
            Some(more) => {
                n += more;
                look += 1;
                previous = Some(decisions);
            }
            None => {
                let verdicts: Vec<Verdict> = decisions.iter().map(|d| d.verdict).collect();
                return CheckOutcome::of(&verdicts, n);
            }
        }
    }
}

/// The first `n` runs of every function (all of them when it has fewer).
fn first_runs(m: &Figures, n: usize) -> Figures {
    m.iter().map(|v| v[..n.min(v.len())].to_vec()).collect()
}

impl CheckOutcome {
    /// The outcome of a check that ended with these verdicts (function 0 the slowed one) after
    /// `head_runs` head runs.
    fn of(verdicts: &[Verdict], head_runs: usize) -> CheckOutcome {
        let regressed = |v: &Verdict| *v == Verdict::Regressed;
        let slowed_regressed = verdicts.first().is_some_and(regressed);
        let other_regressed = verdicts.iter().skip(1).any(regressed);
        CheckOutcome {
            slowed_regressed,
            other_regressed,
            head_runs,
            undecided: !slowed_regressed
                && !other_regressed
                && verdicts.contains(&Verdict::Inconclusive),
        }
    }
}

/// Base and head figures divided by their runs' factors ([`run_factors`]); unchanged when normalisation
/// falls back.
fn normalised(base: &Figures, head: &Figures) -> (Figures, Figures) {
    let run_major = |m: &Figures| -> Vec<Vec<Option<f64>>> {
        let runs = m.first().map_or(0, Vec::len);
        (0..runs)
            .map(|r| m.iter().map(|f| f.get(r).copied()).collect())
            .collect()
    };
    let n = run_factors(&run_major(base), &run_major(head));
    if let Normalisation::Absolute { .. } = n {
        return (base.clone(), head.clone());
    }
    let scale = |m: &Figures, factor: &dyn Fn(usize) -> f64| -> Figures {
        m.iter()
            .map(|f| f.iter().enumerate().map(|(r, x)| x / factor(r)).collect())
            .collect()
    };
    (
        scale(base, &|r| n.base_factor(r)),
        scale(head, &|r| n.head_factor(r)),
    )
}

/// Today's verdicts (as `compare.rs` decided them before the sequential rule): threshold 5%, alpha 5%,
/// 95% interval.
fn today_verdicts(base: &Figures, head: &Figures, relative: bool) -> Vec<Verdict> {
    const THRESHOLD: f64 = 0.05;
    const ALPHA: f64 = 0.05;
    const CONFIDENCE: f64 = 0.95;
    let scale = if relative {
        let ratios: Vec<f64> = base
            .iter()
            .zip(head)
            .filter_map(|(b, h)| Some(stats::median(h)? / stats::median(b)?))
            .collect();
        if ratios.len() >= 3 {
            stats::median(&ratios).unwrap_or(1.0)
        } else {
            1.0
        }
    } else {
        1.0
    };
    let mut rows: Vec<(Option<stats::RatioEstimate>, Option<f64>)> = Vec::with_capacity(base.len());
    for (b, h) in base.iter().zip(head) {
        let h: Vec<f64> = h.iter().map(|x| x / scale).collect();
        rows.push((
            stats::ratio_estimate(b, &h, CONFIDENCE),
            stats::mann_whitney(b, &h).map(|m| m.p_two_sided),
        ));
    }
    let tested: Vec<(usize, f64)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.1?)))
        .collect();
    let q = stats::benjamini_hochberg(&tested.iter().map(|t| t.1).collect::<Vec<_>>());
    let mut verdicts = vec![Verdict::Inconclusive; rows.len()];
    for (&(i, _), q) in tested.iter().zip(q) {
        let Some(r) = rows[i].0 else { continue };
        let up = 1.0 + THRESHOLD;
        verdicts[i] = if q < ALPHA && r.low > up {
            Verdict::Regressed
        } else if q < ALPHA && r.high < 1.0 / up {
            Verdict::Improved
        } else if r.low >= 1.0 / up && r.high <= up {
            Verdict::Unchanged
        } else {
            Verdict::Inconclusive
        };
    }
    verdicts
}

/// The designs of the table: today's rule (absolute and `--relative`), the new default, and the new rule
/// without normalisation and with a 10-run baseline, to show what each part buys.
pub fn standard_designs() -> Vec<Design> {
    vec![
        Design::today(),
        Design::Today {
            base_runs: 10,
            runs: 10,
            max_runs: 30,
            relative: true,
        },
        Design::new_default(),
        Design::Sequential {
            settings: SequentialSettings::default(),
            normalise: false,
        },
        Design::Sequential {
            settings: SequentialSettings {
                base_runs: 10,
                ..Default::default()
            },
            normalise: true,
        },
    ]
}

/// Rows for printing: design, false alarms (A/A), detection at each non-zero effect, mean head runs and
/// undecided share (A/A). The first row is the header.
pub fn table(results: &[DesignResult]) -> Vec<Vec<String>> {
    let mut header = vec!["design".to_string(), "false alarms".to_string()];
    let effects: Vec<f64> = results
        .first()
        .map(|r| {
            r.effects
                .iter()
                .map(|e| e.effect)
                .filter(|e| *e != 0.0)
                .collect()
        })
        .unwrap_or_default();
    header.extend(effects.iter().map(|e| format!("+{:.0}% caught", e * 100.0)));
    header.push("mean head runs (A/A)".into());
    header.push("inconclusive at cap (A/A)".into());
    let mut rows = vec![header];
    for r in results {
        let aa = r.effects.iter().find(|e| e.effect == 0.0);
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        let mut row = vec![
            r.design.clone(),
            aa.map_or("-".into(), |a| {
                format!(
                    "{} ({}/{})",
                    pct(a.false_alarm_rate()),
                    a.alarms(),
                    a.checks
                )
            }),
        ];
        for e in r.effects.iter().filter(|e| e.effect != 0.0) {
            row.push(pct(e.detection_rate()));
        }
        row.push(aa.map_or("-".into(), |a| format!("{:.1}", a.mean_head_runs())));
        row.push(aa.map_or("-".into(), |a| pct(a.undecided_rate())));
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pinned test's size: many baselines with few checks each, because most of the spread between
    /// runs of the simulation comes from the baselines (each draws the slowed function's machine shift).
    fn pinned(seed: u64) -> SimConfig {
        SimConfig {
            baselines: 100,
            checks_per_baseline: 4,
            effects: vec![0.0, 0.10],
            seed,
            ..Default::default()
        }
    }

    #[test]
    fn rng_is_deterministic_uniform_and_normal() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        let n = 100_000;
        let (mut sum, mut sq, mut u_sum) = (0.0, 0.0, 0.0);
        let mut below = 0;
        for _ in 0..n {
            let z = a.normal();
            sum += z;
            sq += z * z;
            below += usize::from(z < -1.959964);
            let u = a.uniform();
            assert!((0.0..1.0).contains(&u));
            u_sum += u;
        }
        let n = n as f64;
        // Standard errors: 0.003 for the mean, 0.0045 for the variance, 0.0009 for the uniform mean.
        assert!((sum / n).abs() < 0.015, "{}", sum / n);
        assert!((sq / n - 1.0).abs() < 0.025, "{}", sq / n);
        assert!((u_sum / n - 0.5).abs() < 0.005);
        // The lower 2.5% tail (s.e. 0.0005).
        assert!((below as f64 / n - 0.025).abs() < 0.0025, "{below}");
    }

    #[test]
    fn the_simulation_is_reproducible_and_uses_common_draws() {
        let config = SimConfig {
            baselines: 2,
            checks_per_baseline: 2,
            effects: vec![0.0, 0.2],
            ..Default::default()
        };
        let designs = [Design::new_default()];
        assert_eq!(simulate(&designs, &config), simulate(&designs, &config));
        let other = simulate(
            &designs,
            &SimConfig {
                seed: 2,
                ..config.clone()
            },
        );
        assert_eq!(other[0].effects[0].checks, 4);
        // A design listed twice sees the same draws: identical counts.
        let twice = simulate(&[Design::new_default(), Design::new_default()], &config);
        assert_eq!(twice[0].effects, twice[1].effects);
    }

    /// The scenario (see [`Noise::default`]): CV 3% per function, whole-run noise 2%, AR(1) drift
    /// 2%, baseline from another machine with ±2% per function, 20 functions. 400 A/A checks against 40
    /// baselines and the same 400 with one function 10% slower, about 4 s in a debug build.
    ///
    /// The bars, with their margins. With 6000 checks per row (`print_table`) the new default measured
    /// 0.0% false alarms (today's rule: 2.6%), 97.6% detection of +10%, 16.1 mean head runs and 5.3%
    /// inconclusive at the cap. At this test's 400 checks the rates spread from seed to seed
    /// (`pinned_bars_across_seeds`, 30 seeds: detection 95.5–99.8%, mean runs 15.0–16.6, inconclusive
    /// 2.5–7.8%, no false alarm). The bars sit outside that spread: false alarms ≤ 1% (5 of 400 to fail),
    /// detection ≥ 93%, mean head runs ≤ 19, inconclusive ≤ 10%.
    #[test]
    fn the_new_default_keeps_its_error_rates() {
        let r = simulate(&[Design::new_default()], &pinned(7));
        let (aa, slowed) = (r[0].effects[0], r[0].effects[1]);
        let shown = format!("A/A {aa:?}\n+10% {slowed:?}");
        assert_eq!(aa.checks, 400);
        assert!(aa.false_alarm_rate() <= 0.01, "{shown}");
        assert!(slowed.false_alarm_rate() <= 0.01, "{shown}");
        assert!(slowed.detection_rate() >= 0.93, "{shown}");
        assert!(aa.mean_head_runs() <= 19.0, "{shown}");
        assert!(aa.undecided_rate() <= 0.10, "{shown}");
        // A confirmed regression stops the check early.
        assert!(slowed.mean_head_runs() < aa.mean_head_runs(), "{shown}");
    }

    /// The same bars fail for today's rule on the same scenario (so they measure something): it runs to the
    /// cap and stays inconclusive nearly always, and misses the slowed function too often.
    #[test]
    fn todays_rule_does_not_meet_the_same_bars() {
        let config = SimConfig {
            baselines: 10,
            checks_per_baseline: 5,
            effects: vec![0.0, 0.10],
            seed: 7,
            ..Default::default()
        };
        let r = simulate(&[Design::today()], &config);
        let (aa, slowed) = (r[0].effects[0], r[0].effects[1]);
        let shown = format!("A/A {aa:?}\n+10% {slowed:?}");
        assert!(aa.mean_head_runs() > 25.0, "{shown}");
        assert!(aa.undecided_rate() > 0.5, "{shown}");
        assert!(slowed.detection_rate() < 0.95, "{shown}");
    }

    /// Share of 400 checks that confirm a regression of exactly the smallest detectable effect: one function,
    /// lognormal noise only (CV 3%), one look of 30 vs 30 runs at 95%.
    fn detection_at_smallest_detectable(seed: u64) -> f64 {
        use super::super::sequential::smallest_detectable;
        let settings = SequentialSettings {
            looks: vec![30],
            ..Default::default()
        };
        let rule = SequentialRule::new(settings.clone()).unwrap();
        let look = rule.looks()[0];
        let cv = 0.03_f64.exp_m1();
        let effect = smallest_detectable(cv, 30, 30, look.alpha, 0.05);
        assert!(effect > 1.06 && effect < 1.09, "{effect}");
        let noise = Noise {
            functions: 1,
            cv: 0.03,
            run_noise: 0.0,
            drift_sd: 0.0,
            drift_phi: 0.0,
            machine_shift: 0.0,
        };
        let config = SimConfig {
            noise,
            baselines: 100,
            checks_per_baseline: 4,
            effects: vec![effect - 1.0],
            seed,
        };
        let design = Design::Sequential {
            settings,
            normalise: false,
        };
        simulate(&[design], &config)[0].effects[0].detection_rate()
    }

    /// [`super::super::sequential::smallest_detectable`] is what it says: at that effect a look confirms a
    /// regression about [`super::super::sequential::DETECTION_POWER`] of the time. Normal theory says 80%;
    /// the interval's discreteness makes it a little more conservative. Measured 0.73–0.84 over seeds
    /// 100–129 (`pinned_bars_across_seeds`); 400 checks have a standard error of 2%.
    #[test]
    fn the_smallest_detectable_effect_is_detected_at_the_stated_power() {
        let rate = detection_at_smallest_detectable(11);
        assert!(rate > 0.68 && rate < 0.88, "{rate}");
    }

    /// The pinned test's configuration under 30 other seeds: the spread of each rate, to see that the bars
    /// have margin and were not tuned to seed 7. Release build, ignored:
    /// `cargo test --release --lib gate::sim::tests::pinned_bars_across_seeds -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn pinned_bars_across_seeds() {
        let mut worst = (0.0_f64, 1.0_f64, 0.0_f64, 0.0_f64);
        for seed in 100..130 {
            let r = simulate(&[Design::new_default()], &pinned(seed));
            let (aa, slowed) = (r[0].effects[0], r[0].effects[1]);
            println!(
                "seed {seed}: false alarms {:.2}% / {:.2}%, +10% caught {:.1}%, mean runs {:.1}, undecided {:.1}%",
                100.0 * aa.false_alarm_rate(),
                100.0 * slowed.false_alarm_rate(),
                100.0 * slowed.detection_rate(),
                aa.mean_head_runs(),
                100.0 * aa.undecided_rate()
            );
            worst.0 = worst
                .0
                .max(aa.false_alarm_rate().max(slowed.false_alarm_rate()));
            worst.1 = worst.1.min(slowed.detection_rate());
            worst.2 = worst.2.max(aa.mean_head_runs());
            worst.3 = worst.3.max(aa.undecided_rate());
        }
        for seed in 100..130 {
            println!(
                "seed {seed}: detected at the smallest detectable effect: {:.3}",
                detection_at_smallest_detectable(seed)
            );
        }
        println!(
            "worst: false alarms {:.2}%, caught {:.1}%, mean runs {:.1}, undecided {:.1}%",
            100.0 * worst.0,
            100.0 * worst.1,
            worst.2,
            100.0 * worst.3
        );
    }

    /// Today's rule and the new default under other noise: no machine shift, no drift, quieter and
    /// noisier functions. Release build, ignored (as above, `print_scenarios`).
    #[test]
    #[ignore]
    fn print_scenarios() {
        let quiet = Noise {
            cv: 0.01,
            run_noise: 0.0,
            drift_sd: 0.0,
            machine_shift: 0.0,
            ..Noise::default()
        };
        for (name, noise) in [
            (
                "default (CV 3%, run 2%, drift 2%, shift ±2%)",
                Noise::default(),
            ),
            (
                "no machine shift",
                Noise {
                    machine_shift: 0.0,
                    ..Noise::default()
                },
            ),
            (
                "no drift, no run noise",
                Noise {
                    run_noise: 0.0,
                    drift_sd: 0.0,
                    ..Noise::default()
                },
            ),
            ("CV 1%, nothing else", quiet),
            (
                "CV 5%, run 3%, drift 3%, shift ±2%",
                Noise {
                    cv: 0.05,
                    run_noise: 0.03,
                    drift_sd: 0.03,
                    ..Noise::default()
                },
            ),
        ] {
            let config = SimConfig {
                noise,
                baselines: 100,
                checks_per_baseline: 10,
                ..Default::default()
            };
            println!("{name}:");
            let designs = [Design::today(), Design::new_default()];
            for row in table(&simulate(&designs, &config)) {
                println!("| {} |", row.join(" | "));
            }
        }
    }

    /// Prints the full table (the 300 baselines × 20 checks per effect and design). Minutes in a
    /// debug build: `cargo test --release --lib gate::sim::tests::print_table -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn print_table() {
        let seed = std::env::var("PERFGATE_SIM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let config = SimConfig {
            baselines: 300,
            checks_per_baseline: 20,
            seed,
            ..Default::default()
        };
        println!("{config:?}");
        let rows = table(&simulate(&standard_designs(), &config));
        for row in rows {
            println!("| {} |", row.join(" | "));
        }
    }
}
