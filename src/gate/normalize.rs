//! Per-run normalisation: each run's per-function figures divided by that run's *speed factor*, the median
//! over the gated functions of `figure / reference`, the reference of a function being its median over the
//! base runs. Base and head runs alike.
//!
//! Why: a benchmark run on a shared machine is slowed or sped up as a whole (frequency scaling, a neighbour,
//! a slower runner), and that common factor is most of the run-to-run noise and all of the drift between the
//! day the baseline was recorded and the check. It multiplies every function of the run, so it moves the
//! median ratio of the run by the same factor and dividing by it cancels it exactly. A function that really
//! changed moves only its own ratio, which a median of five or more barely notices, so the change survives
//! normalisation (a little shrunk: the median moves by at most one order statistic).
//!
//! Invariants:
//! * Pure: no I/O; the same input gives the same factors.
//! * Every factor is finite and positive, or the result is [`Normalisation::Absolute`] with the reason, and
//!   then every factor is 1 (figures compared as measured). Fewer than [`MIN_FUNCTIONS_FOR_NORMALISATION`]
//!   usable functions in the base, or in any run, gives the fallback: with two or three functions the median
//!   is pulled by the very function that changed.
//! * Only positive finite figures count (a zero, NaN or infinite figure, or one missing from a run, is left
//!   out of that run's median); the figures themselves are never changed here, only the factors computed.
//! * The whole run's wall time is not normalised by anything here: it stays a separate, absolute signal.
use serde::{Deserialize, Serialize};

use super::figures::{FuncKey, FuncRun, RunFigures};
use super::stats;

/// Gated functions needed (in the base, and measured in every run) before a run's median ratio says
/// something about the machine rather than about the code.
pub const MIN_FUNCTIONS_FOR_NORMALISATION: usize = 5;

/// How the runs' figures are to be scaled before they are compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum Normalisation {
    /// Divide every figure of base run `i` by `base[i]` and of head run `j` by `head[j]`.
    PerRun {
        /// Speed factor of each base run (around 1: the reference is the base's own median).
        base: Vec<f64>,
        /// Speed factor of each head run (the head machine's speed against the base's, run by run).
        head: Vec<f64>,
        /// Functions the factors were taken over.
        functions: usize,
    },
    /// Compare the figures as measured.
    Absolute {
        /// Functions that could have been used.
        functions: usize,
        /// Why normalisation was not applied, for the report (one line).
        reason: String,
    },
}

impl Normalisation {
    /// The factor of base run `i` (1 when absolute or out of range).
    pub fn base_factor(&self, i: usize) -> f64 {
        match self {
            Normalisation::PerRun { base, .. } => base.get(i).copied().unwrap_or(1.0),
            Normalisation::Absolute { .. } => 1.0,
        }
    }

    /// The factor of head run `j` (1 when absolute or out of range).
    pub fn head_factor(&self, j: usize) -> f64 {
        match self {
            Normalisation::PerRun { head, .. } => head.get(j).copied().unwrap_or(1.0),
            Normalisation::Absolute { .. } => 1.0,
        }
    }

    /// Whether the figures are divided by per-run factors.
    pub fn is_per_run(&self) -> bool {
        matches!(self, Normalisation::PerRun { .. })
    }

    /// Median head factor over median base factor: how much slower (> 1) the head runs were as a whole.
    /// `None` when absolute.
    pub fn head_speed(&self) -> Option<f64> {
        match self {
            Normalisation::PerRun { base, head, .. } => {
                Some(stats::median(head)? / stats::median(base)?)
            }
            Normalisation::Absolute { .. } => None,
        }
    }
}

/// Usable figure: positive and finite.
fn usable(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite() && *x > 0.0)
}

/// Speed factors of every run. `base[i][f]` and `head[j][f]` are the figures of gated function `f` in base
/// run `i` and head run `j` (`None` where that run did not measure it); every row has one entry per gated
/// function (shorter rows are read as missing the rest).
pub fn run_factors(base: &[Vec<Option<f64>>], head: &[Vec<Option<f64>>]) -> Normalisation {
    let columns = base.iter().chain(head).map(Vec::len).max().unwrap_or(0);
    let reference: Vec<Option<f64>> = (0..columns)
        .map(|f| {
            let values: Vec<f64> = base
                .iter()
                .filter_map(|run| usable(run.get(f).copied().flatten()))
                .collect();
            stats::median(&values)
        })
        .collect();
    let functions = reference.iter().filter(|r| r.is_some()).count();
    if base.is_empty() {
        return Normalisation::Absolute {
            functions,
            reason: "no base runs to take the functions' reference times from".into(),
        };
    }
    if functions < MIN_FUNCTIONS_FOR_NORMALISATION {
        return Normalisation::Absolute {
            functions,
            reason: format!(
                "{functions} gated function{} with base figures: per-run normalisation needs at least \
                 {MIN_FUNCTIONS_FOR_NORMALISATION} (with fewer, the median is pulled by the function that changed); \
                 absolute figures compared",
                if functions == 1 { "" } else { "s" }
            ),
        };
    }
    let factor = |run: &Vec<Option<f64>>| -> Option<f64> {
        let ratios: Vec<f64> = reference
            .iter()
            .enumerate()
            .filter_map(|(f, r)| Some(usable(run.get(f).copied().flatten())? / (*r)?))
            .collect();
        if ratios.len() < MIN_FUNCTIONS_FOR_NORMALISATION {
            return None;
        }
        stats::median(&ratios).filter(|k| k.is_finite() && *k > 0.0)
    };
    let mut factors = [Vec::new(), Vec::new()];
    for (side, (runs, name)) in [(base, "base"), (head, "head")].into_iter().enumerate() {
        for (i, run) in runs.iter().enumerate() {
            match factor(run) {
                Some(k) => factors[side].push(k),
                None => {
                    return Normalisation::Absolute {
                        functions,
                        reason: format!(
                            "{name} run {} measured fewer than {MIN_FUNCTIONS_FOR_NORMALISATION} of the gated \
                             functions: per-run normalisation not applied, absolute figures compared",
                            i + 1
                        ),
                    }
                }
            }
        }
    }
    let [base, head] = factors;
    Normalisation::PerRun {
        base,
        head,
        functions,
    }
}

/// [`run_factors`] over run figures: the gated functions are `gated` (the caller's choice: in both sides,
/// above the share floor, not ignored), each run's figure of one being `value(f)` (the gate's metric).
pub fn normalise_figures(
    base: &[RunFigures],
    head: &[RunFigures],
    gated: &[&FuncKey],
    value: impl Fn(&FuncRun) -> f64,
) -> Normalisation {
    let matrix = |runs: &[RunFigures]| -> Vec<Vec<Option<f64>>> {
        runs.iter()
            .map(|r| {
                gated
                    .iter()
                    .map(|k| r.functions.get(*k).map(&value))
                    .collect()
            })
            .collect()
    };
    run_factors(&matrix(base), &matrix(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs with `functions` functions: function f's time is `(100 + 37 f) * run_scale(r) * (1 + wiggle)`,
    /// the wiggle a deterministic ±2% per (run, function).
    fn matrix(
        runs: usize,
        functions: usize,
        run_scale: impl Fn(usize) -> f64,
        seed: u64,
    ) -> Vec<Vec<Option<f64>>> {
        (0..runs)
            .map(|r| {
                (0..functions)
                    .map(|f| {
                        let h = (r as u64 * 7919 + f as u64 * 104_729 + seed * 1_299_709) % 41;
                        let wiggle = (h as f64 - 20.0) / 1000.0;
                        Some((100.0 + 37.0 * f as f64) * run_scale(r) * (1.0 + wiggle))
                    })
                    .collect()
            })
            .collect()
    }

    fn scaled(m: &[Vec<Option<f64>>], n: &Normalisation, head: bool, f: usize) -> Vec<f64> {
        m.iter()
            .enumerate()
            .map(|(i, run)| {
                let k = if head {
                    n.head_factor(i)
                } else {
                    n.base_factor(i)
                };
                run[f].unwrap() / k
            })
            .collect()
    }

    #[test]
    fn a_uniform_slowdown_of_each_run_cancels_exactly() {
        let base = matrix(10, 8, |_| 1.0, 1);
        // The same figures, each run slowed by its own factor (drift, a slower machine).
        let slow = |r: usize| 1.3 + 0.05 * (r % 4) as f64;
        let head: Vec<Vec<Option<f64>>> = base
            .iter()
            .enumerate()
            .map(|(r, run)| run.iter().map(|v| v.map(|x| x * slow(r))).collect())
            .collect();
        let n = run_factors(&base, &head);
        assert!(n.is_per_run(), "{n:?}");
        for r in 0..10 {
            let k = n.head_factor(r) / n.base_factor(r);
            assert!((k - slow(r)).abs() < 1e-12, "run {r}: {k}");
        }
        for f in 0..8 {
            let (b, h) = (scaled(&base, &n, false, f), scaled(&head, &n, true, f));
            for (x, y) in b.iter().zip(&h) {
                assert!((x / y - 1.0).abs() < 1e-12);
            }
        }
        let speed = n.head_speed().unwrap();
        assert!(speed > 1.3 && speed < 1.45, "{speed}");
    }

    #[test]
    fn one_regressed_function_still_shows_on_a_drifting_machine() {
        // 6 functions, head runs 25% slower as a whole and drifting, function 2 a further 20% slower.
        let base = matrix(12, 6, |r| 1.0 + 0.01 * r as f64, 2);
        let mut head = matrix(12, 6, |r| 1.25 * (1.0 + 0.02 * r as f64), 3);
        for run in &mut head {
            run[2] = run[2].map(|x| x * 1.2);
        }
        let n = run_factors(&base, &head);
        assert!(n.is_per_run());
        for f in 0..6 {
            let b = stats::median(&scaled(&base, &n, false, f)).unwrap();
            let h = stats::median(&scaled(&head, &n, true, f)).unwrap();
            let ratio = h / b;
            if f == 2 {
                assert!(ratio > 1.15 && ratio < 1.25, "regressed function: {ratio}");
            } else {
                assert!((ratio - 1.0).abs() < 0.04, "function {f}: {ratio}");
            }
        }
        // Without normalisation every function would look 25-50% slower.
        let raw = |m: &[Vec<Option<f64>>]| {
            stats::median(&m.iter().map(|r| r[0].unwrap()).collect::<Vec<_>>())
        };
        assert!(raw(&head).unwrap() / raw(&base).unwrap() > 1.25);
    }

    #[test]
    fn fewer_than_five_functions_fall_back_and_say_so() {
        let base = matrix(10, 4, |_| 1.0, 4);
        let head = matrix(10, 4, |_| 1.5, 5);
        let n = run_factors(&base, &head);
        match &n {
            Normalisation::Absolute { functions, reason } => {
                assert_eq!(*functions, 4);
                assert!(
                    reason.contains("4 gated functions") && reason.contains("at least 5"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(n.head_factor(3), 1.0);
        assert_eq!(n.head_speed(), None);
        // Five is enough.
        assert!(run_factors(&matrix(10, 5, |_| 1.0, 4), &matrix(10, 5, |_| 1.5, 5)).is_per_run());
        // No base runs.
        assert!(!run_factors(&[], &head).is_per_run());
    }

    #[test]
    fn unusable_figures_are_left_out_and_a_thin_run_falls_back() {
        let base = matrix(6, 7, |_| 1.0, 6);
        let mut head = matrix(6, 7, |_| 2.0, 7);
        // Two figures of one head run unusable: 5 remain, still per run.
        head[1][0] = Some(0.0);
        head[1][4] = Some(f64::NAN);
        let n = run_factors(&base, &head);
        assert!(n.is_per_run(), "{n:?}");
        assert!((n.head_factor(1) - 2.0).abs() < 0.1);
        // A third missing: that run cannot be normalised, so nothing is.
        head[1][5] = None;
        match run_factors(&base, &head) {
            Normalisation::Absolute { reason, .. } => {
                assert!(reason.contains("head run 2"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // A function without any usable base figure does not count (6 left).
        let mut base2 = base.clone();
        for run in &mut base2 {
            run[6] = Some(f64::INFINITY);
        }
        match run_factors(&base2, &matrix(6, 7, |_| 2.0, 7)) {
            Normalisation::PerRun { functions, .. } => assert_eq!(functions, 6),
            other => panic!("{other:?}"),
        }
        // Ragged rows read as missing.
        let short: Vec<Vec<Option<f64>>> = head.iter().map(|r| r[..3].to_vec()).collect();
        assert!(!run_factors(&base, &short).is_per_run());
    }

    #[test]
    fn figures_adapter_uses_the_gated_keys_and_the_metric() {
        let key = |i: usize| FuncKey {
            module: "bench".into(),
            symbol: format!("f{i}"),
        };
        let keys: Vec<FuncKey> = (0..6).map(key).collect();
        let runs = |scale: f64| -> Vec<RunFigures> {
            (0..4)
                .map(|r| {
                    let mut run = RunFigures::default();
                    for (i, k) in keys.iter().enumerate() {
                        run.functions.insert(
                            k.clone(),
                            FuncRun {
                                self_mean: (10.0 + i as f64) * scale * (1.0 + r as f64 / 100.0),
                                mean: 1.0, // not the metric used below
                                ..Default::default()
                            },
                        );
                    }
                    run
                })
                .collect()
        };
        let gated: Vec<&FuncKey> = keys.iter().collect();
        let n = normalise_figures(&runs(1.0), &runs(3.0), &gated, |f| f.self_mean);
        assert!((n.head_speed().unwrap() - 3.0).abs() < 1e-9, "{n:?}");
        // Only 4 of them gated: fallback.
        assert!(
            !normalise_figures(&runs(1.0), &runs(3.0), &gated[..4], |f| f.self_mean).is_per_run()
        );
    }
}
