//! The first version of the gate's rule, kept so that `perfgate bench gate` can measure it against the
//! current one in the same run (and for `--rule legacy`): absolute figures (or one speed factor with
//! `--relative`), one confidence level at every look, `rule::STEP` more runs while anything is
//! inconclusive. The current rule is in `compare.rs` (per-run normalisation, group-sequential looks).
use std::collections::{BTreeMap, BTreeSet};

use super::baseline::Baseline;
use super::figures::{FuncKey, FuncRun, RunFigures};
use super::model::{Comparison, Figures, FunctionComparison, GateSettings, Metric, Verdict};
use super::stats;
use crate::profile::Machine;

/// What differs between the machine of the baseline and this one, if anything.
pub(super) fn machine_mismatch_legacy(base: &Machine, head: &Machine) -> Option<String> {
    let mut diffs = Vec::new();
    if base.cpu_model != head.cpu_model {
        diffs.push(format!("CPU {:?} vs {:?}", base.cpu_model, head.cpu_model));
    }
    if base.cores != head.cores {
        diffs.push(format!("{} vs {} cores", base.cores, head.cores));
    }
    if base.kernel != head.kernel {
        diffs.push(format!("kernel {} vs {}", base.kernel, head.kernel));
    }
    if diffs.is_empty() {
        None
    } else {
        Some(format!(
            "the baseline was measured on another machine ({}); absolute times may differ for that reason alone: \
             use --relative to factor out a uniformly faster or slower machine",
            diffs.join(", ")
        ))
    }
}

/// The first rule compares one mean: the settings' first mean metric (mean self time without one).
fn metric_value(f: &FuncRun, s: &GateSettings) -> f64 {
    let m = s
        .metrics
        .iter()
        .copied()
        .find(|m| !m.is_quantile())
        .unwrap_or(Metric::MEAN_SELF);
    f.value(m)
}

/// How much faster or slower the head machine runs everything: the median over the gated functions (in both
/// sides, above the share floor, not ignored) of head/base medians. One function that really changed does
/// not move a median of many; a uniformly faster or slower machine moves them all. `None` without any.
fn speed_factor(
    base: &[RunFigures],
    head: &[RunFigures],
    s: &GateSettings,
    ignored: &BTreeSet<&FuncKey>,
) -> Option<f64> {
    let keys: BTreeSet<&FuncKey> = head.iter().flat_map(|r| r.functions.keys()).collect();
    let mut ratios = Vec::new();
    for key in keys {
        if ignored.contains(key) {
            continue;
        }
        let values = |runs: &[RunFigures]| -> (Vec<f64>, Vec<f64>) {
            runs.iter()
                .filter_map(|r| {
                    r.functions
                        .get(key)
                        .map(|f| (metric_value(f, s), share(f, r)))
                })
                .unzip()
        };
        let (b, _) = values(base);
        let (h, hshare) = values(head);
        let share = stats::median(&hshare).unwrap_or(0.0);
        if let (Some(b), Some(h)) = (stats::median(&b), stats::median(&h)) {
            if b > 0.0 && h > 0.0 && share >= s.min_share {
                ratios.push(h / b);
            }
        }
    }
    // With one or two functions the median is pulled by the very function that changed.
    if ratios.len() < MIN_FUNCTIONS_FOR_SPEED {
        return None;
    }
    stats::median(&ratios)
}

/// Gated functions needed before their median change says anything about the machine.
pub const MIN_FUNCTIONS_FOR_SPEED: usize = 3;

fn share(f: &FuncRun, run: &RunFigures) -> f64 {
    if run.total_self > 0.0 {
        f.self_total / run.total_self
    } else {
        0.0
    }
}

fn median_u64(v: &[u64]) -> Option<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// What the baseline says of one function besides its runs.
#[derive(Debug, Clone, Copy, Default)]
struct Override {
    /// Its own threshold, if set.
    threshold: Option<f64>,
    /// `ignore = true`: reported, never gated.
    ignore: bool,
}

/// One function's figures over the runs of one side (base or head), in run order.
#[derive(Debug, Default)]
struct Side {
    /// The metric per run (divided by the speed factor in relative mode).
    values: Vec<f64>,
    /// Share of the run's traced self time, per run.
    shares: Vec<f64>,
    /// Calls per run.
    calls: Vec<u64>,
    /// Total inclusive time per run, ns.
    totals: Vec<f64>,
    /// The demangled name, from the last run that has the function.
    name: Option<String>,
}

impl Side {
    fn of(runs: &[RunFigures], key: &FuncKey, settings: &GateSettings, scale: f64) -> Side {
        let mut side = Side::default();
        for r in runs {
            if let Some(f) = r.functions.get(key) {
                side.values.push(metric_value(f, settings) / scale);
                side.shares.push(share(f, r));
                side.calls.push(f.calls);
                side.totals.push(f.total);
                side.name = Some(f.name.clone());
            }
        }
        side
    }
}

/// Compares the baseline's runs with head runs, by the first rule.
pub fn compare_legacy(
    base: &Baseline,
    head: &[RunFigures],
    settings: &GateSettings,
    benchmark: &str,
    head_machine: &Machine,
) -> Comparison {
    let base_runs = base.run_figures();
    let overrides = overrides_of(base);
    let keys: BTreeSet<&FuncKey> = base_runs
        .iter()
        .chain(head.iter())
        .flat_map(|r| r.functions.keys())
        .collect();
    let ignored: BTreeSet<&FuncKey> = overrides
        .iter()
        .filter(|(_, o)| o.ignore)
        .map(|(k, _)| k)
        .collect();
    let factor = speed_factor(&base_runs, head, settings, &ignored);
    let scale = if settings.relative {
        factor.unwrap_or(1.0)
    } else {
        1.0
    };

    let mut rows = Vec::new();
    let mut tested: Vec<(usize, f64)> = Vec::new();
    for key in keys {
        let b = Side::of(&base_runs, key, settings, 1.0);
        let h = Side::of(head, key, settings, scale);
        let o = overrides.get(key).copied().unwrap_or_default();
        let row = row_of(key, &b, &h, o, settings);
        if row.verdict == Verdict::Inconclusive {
            if let Some(p) = row.figures.p_value {
                tested.push((rows.len(), p));
            }
        }
        rows.push(row);
    }
    // Decided once every p-value is known: the correction is across all gated functions.
    let q = stats::benjamini_hochberg(&tested.iter().map(|&(_, p)| p).collect::<Vec<_>>());
    for (&(i, _), &q) in tested.iter().zip(&q) {
        let row = &mut rows[i];
        row.figures.q_value = Some(q);
        row.verdict = decide(row, q, settings.alpha);
    }
    if settings.gate_calls {
        gate_calls(&mut rows);
    }
    rows.sort_by(|a, b| {
        a.verdict.cmp(&b.verdict).then(
            b.share
                .partial_cmp(&a.share)
                .unwrap_or(std::cmp::Ordering::Equal),
        )
    });
    let warnings = warnings(base.runs, head.len(), settings, factor, &rows);
    let undecided = rows.iter().any(|r| r.verdict == Verdict::Inconclusive);
    Comparison {
        benchmark: benchmark.to_string(),
        command: base.command.clone(),
        base_runs: base.runs,
        head_runs: head.len(),
        settings: settings.clone(),
        machine_mismatch: machine_mismatch_legacy(&base.machine, head_machine),
        speed_factor: factor,
        wall_ns: Some(head.iter().map(|r| r.wall_ns).sum()),
        functions: rows,
        warnings,
        mode: Some("baseline".into()),
        complete: !undecided || head.len() >= settings.max_runs,
        ..Comparison::default()
    }
}

/// The per-function settings of the baseline.
fn overrides_of(base: &Baseline) -> BTreeMap<FuncKey, Override> {
    base.functions
        .iter()
        .map(|f| {
            let key = FuncKey {
                module: f.module.clone(),
                symbol: f.symbol.clone(),
            };
            let o = Override {
                threshold: f.threshold,
                ignore: f.ignore,
            };
            (key, o)
        })
        .collect()
}

/// `--gate-calls`: a changed call count fails, whatever the timing said (counts are exact).
fn gate_calls(rows: &mut [FunctionComparison]) {
    for row in rows {
        if row.calls_changed()
            && !matches!(
                row.verdict,
                Verdict::Ignored | Verdict::New | Verdict::Removed
            )
        {
            row.verdict = Verdict::CallsChanged;
        }
    }
}

/// One function's row: figures, ratio and p-value, and a verdict that is final unless it is
/// `Inconclusive` (then the p-value waits for the correction across functions).
fn row_of(
    key: &FuncKey,
    b: &Side,
    h: &Side,
    o: Override,
    settings: &GateSettings,
) -> FunctionComparison {
    let share = stats::median(if h.shares.is_empty() {
        &b.shares
    } else {
        &h.shares
    })
    .unwrap_or(0.0);
    let mut row = FunctionComparison {
        name: h
            .name
            .clone()
            .or_else(|| b.name.clone())
            .unwrap_or_else(|| key.symbol.clone()),
        module: key.module.clone(),
        verdict: Verdict::Unchanged,
        figures: Figures {
            base: stats::median(&b.values),
            head: stats::median(&h.values),
            threshold: o.threshold.unwrap_or(settings.threshold),
            confidence: Some(settings.confidence),
            ..Figures::default()
        },
        share,
        base_calls: median_u64(&b.calls),
        head_calls: median_u64(&h.calls),
        head_total_ns: stats::median(&h.totals),
        ..FunctionComparison::default()
    };
    row.verdict = if o.ignore {
        Verdict::Ignored
    } else if b.values.is_empty() {
        Verdict::New
    } else if h.values.is_empty() {
        Verdict::Removed
    } else if share < settings.min_share {
        Verdict::BelowFloor
    } else {
        Verdict::Inconclusive
    };
    if !b.values.is_empty() && !h.values.is_empty() {
        if let Some(r) = stats::ratio_estimate(&b.values, &h.values, settings.confidence) {
            row.figures.ratio = Some(r.estimate);
            row.figures.ratio_low = Some(r.low);
            row.figures.ratio_high = Some(r.high);
        }
        row.figures.p_value = stats::mann_whitney(&b.values, &h.values).map(|m| m.p_two_sided);
    }
    row
}

/// The warnings every report shows at the top.
fn warnings(
    base_runs: usize,
    head_runs: usize,
    settings: &GateSettings,
    factor: Option<f64>,
    rows: &[FunctionComparison],
) -> Vec<String> {
    let mut warnings = Vec::new();
    if settings.relative && factor.is_none() {
        warnings.push(format!(
            "--relative needs at least {MIN_FUNCTIONS_FOR_SPEED} gated functions to estimate the machine's speed; \
             absolute times were compared"
        ));
    }
    let min_p = stats::min_p_two_sided(base_runs, head_runs);
    if min_p >= settings.alpha {
        warnings.push(format!(
            "with {base_runs} base runs and {head_runs} head runs the smallest possible p-value is {min_p:.3}, not below alpha {}: \
             nothing can be found significant; use more runs",
            settings.alpha
        ));
    }
    let gated = rows.iter().filter(|r| r.figures.q_value.is_some()).count();
    if let Some(k) = factor {
        let up = 1.0 + settings.threshold;
        if !settings.relative && gated >= 3 && (k > up || k < 1.0 / up) {
            warnings.push(format!(
                "all gated functions moved together (median change {:+.1}%): a busier or different machine looks \
                 like this, a change of the code rarely does; rerun, or use --relative to factor it out",
                (k - 1.0) * 100.0
            ));
        }
    }
    warnings
}

/// The verdict of a gated function from its ratio interval and adjusted p-value.
fn decide(row: &FunctionComparison, q: f64, alpha: f64) -> Verdict {
    let (Some(low), Some(high)) = (row.figures.ratio_low, row.figures.ratio_high) else {
        // No ratio (a zero time): only identical figures count as unchanged.
        return if row.figures.base == row.figures.head {
            Verdict::Unchanged
        } else {
            Verdict::Inconclusive
        };
    };
    let up = 1.0 + row.figures.threshold;
    let down = 1.0 / up;
    if q < alpha && low > up {
        Verdict::Regressed
    } else if q < alpha && high < down {
        Verdict::Improved
    } else if low >= down && high <= up {
        // The whole interval lies within the threshold: whatever changed is too small to matter.
        Verdict::Unchanged
    } else {
        Verdict::Inconclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::baseline::GateOverrides;
    use crate::plan::Selection;

    fn runs(values: &[(&str, Vec<f64>)]) -> Vec<RunFigures> {
        let n = values[0].1.len();
        (0..n)
            .map(|i| {
                let mut r = RunFigures {
                    wall_ns: 1e9,
                    ..Default::default()
                };
                for (name, v) in values {
                    r.functions.insert(
                        FuncKey {
                            module: "bench".into(),
                            symbol: name.to_string(),
                        },
                        FuncRun {
                            name: name.to_string(),
                            calls: 100,
                            mean: v[i],
                            self_mean: v[i],
                            total: v[i] * 100.0,
                            self_total: v[i] * 100.0,
                            ..Default::default()
                        },
                    );
                }
                r.total_self = r.functions.values().map(|f| f.self_total).sum();
                r
            })
            .collect()
    }

    fn jitter(base: f64, n: usize, k: u64) -> Vec<f64> {
        // Deterministic ±1% jitter.
        (0..n)
            .map(|i| base * (1.0 + (((i as u64 * 7919 + k * 104729) % 21) as f64 - 10.0) / 1000.0))
            .collect()
    }

    fn baseline(values: &[(&str, Vec<f64>)]) -> Baseline {
        Baseline::from_runs(
            vec!["./bench".into()],
            None,
            Machine::default(),
            GateOverrides::default(),
            &Selection::default(),
            &runs(values),
        )
    }

    #[test]
    fn a_25_percent_regression_is_found_and_nothing_else() {
        let base = baseline(&[
            ("a", jitter(1000.0, 10, 1)),
            ("b", jitter(2000.0, 10, 2)),
            ("c", jitter(500.0, 10, 3)),
        ]);
        let head = runs(&[
            ("a", jitter(1250.0, 10, 4)),
            ("b", jitter(2000.0, 10, 5)),
            ("c", jitter(500.0, 10, 6)),
        ]);
        let c = compare_legacy(
            &base,
            &head,
            &GateSettings::default(),
            "bench",
            &Machine::default(),
        );
        let failing: Vec<_> = c.failures().map(|f| f.name.as_str()).collect();
        assert_eq!(failing, ["a"]);
        let a = &c.functions[0];
        assert!(
            a.figures.ratio.unwrap() > 1.2 && a.figures.ratio.unwrap() < 1.3,
            "{a:?}"
        );
        assert!(c.with(Verdict::Unchanged).count() == 2);
    }

    #[test]
    fn identical_runs_pass() {
        let v = [("a", jitter(1000.0, 10, 1)), ("b", jitter(2000.0, 10, 2))];
        let c = compare_legacy(
            &baseline(&v),
            &runs(&v),
            &GateSettings::default(),
            "bench",
            &Machine::default(),
        );
        assert!(c.passed());
        assert_eq!(c.with(Verdict::Unchanged).count(), 2);
    }

    #[test]
    fn improvements_new_removed_and_floor() {
        let base = baseline(&[
            ("a", jitter(1000.0, 10, 1)),
            ("gone", jitter(1000.0, 10, 2)),
            ("tiny", jitter(1.0, 10, 3)),
        ]);
        let head = runs(&[
            ("a", jitter(700.0, 10, 1)),
            ("fresh", jitter(1000.0, 10, 2)),
            ("tiny", jitter(1.0, 10, 3)),
        ]);
        let c = compare_legacy(
            &base,
            &head,
            &GateSettings::default(),
            "bench",
            &Machine::default(),
        );
        let verdict = |n: &str| c.functions.iter().find(|f| f.name == n).unwrap().verdict;
        assert_eq!(verdict("a"), Verdict::Improved);
        assert_eq!(verdict("gone"), Verdict::Removed);
        assert_eq!(verdict("fresh"), Verdict::New);
        assert_eq!(verdict("tiny"), Verdict::BelowFloor);
        assert!(c.passed());
    }

    #[test]
    fn a_small_sample_is_inconclusive_not_a_guess() {
        let base = baseline(&[("a", jitter(1000.0, 3, 1))]);
        let head = runs(&[("a", jitter(1300.0, 3, 2))]);
        let c = compare_legacy(
            &base,
            &head,
            &GateSettings::default(),
            "bench",
            &Machine::default(),
        );
        assert_eq!(c.functions[0].verdict, Verdict::Inconclusive);
        assert!(crate::gate::rule::undecided(&c));
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("smallest possible p-value")));
    }

    #[test]
    fn changed_call_counts_gate_only_when_asked() {
        let base = baseline(&[("a", jitter(1000.0, 10, 1))]);
        let mut head = runs(&[("a", jitter(1000.0, 10, 1))]);
        for r in &mut head {
            r.functions.values_mut().for_each(|f| f.calls = 150);
        }
        let s = GateSettings::default();
        let c = compare_legacy(&base, &head, &s, "bench", &Machine::default());
        assert!(c.passed());
        assert!(c.functions[0].calls_changed());
        let c = compare_legacy(
            &base,
            &head,
            &GateSettings {
                gate_calls: true,
                ..s
            },
            "bench",
            &Machine::default(),
        );
        assert_eq!(c.functions[0].verdict, Verdict::CallsChanged);
        assert!(!c.passed());
    }

    #[test]
    fn relative_mode_survives_a_uniformly_slower_machine() {
        let base = baseline(&[
            ("a", jitter(1000.0, 10, 1)),
            ("b", jitter(2000.0, 10, 2)),
            ("c", jitter(1500.0, 10, 3)),
        ]);
        let head = runs(&[
            ("a", jitter(1300.0, 10, 1)),
            ("b", jitter(2600.0, 10, 2)),
            ("c", jitter(1950.0, 10, 3)),
        ]);
        let abs = compare_legacy(
            &base,
            &head,
            &GateSettings::default(),
            "bench",
            &Machine::default(),
        );
        assert_eq!(abs.failures().count(), 3);
        let rel = compare_legacy(
            &base,
            &head,
            &GateSettings {
                relative: true,
                ..Default::default()
            },
            "bench",
            &Machine::default(),
        );
        assert!(rel.passed(), "{:?}", rel.functions);
        // Two functions are too few to tell the machine from the code: absolute, and said so.
        let two = baseline(&[("a", jitter(1000.0, 10, 1)), ("b", jitter(2000.0, 10, 2))]);
        let head2 = runs(&[("a", jitter(2000.0, 10, 1)), ("b", jitter(2000.0, 10, 2))]);
        let s = GateSettings {
            relative: true,
            ..Default::default()
        };
        let c = compare_legacy(&two, &head2, &s, "bench", &Machine::default());
        assert!(c.speed_factor.is_none());
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("needs at least 3 gated functions")),
            "{:?}",
            c.warnings
        );
        let failing: Vec<_> = c.failures().map(|f| f.name.as_str()).collect();
        assert_eq!(failing, ["a"]);
        assert_eq!(c.with(Verdict::Improved).count(), 0);
    }

    #[test]
    fn per_function_overrides_ignore_and_threshold() {
        let mut base = baseline(&[("a", jitter(1000.0, 10, 1)), ("b", jitter(1000.0, 10, 2))]);
        base.functions[0].ignore = true; // a
        base.functions[1].threshold = Some(0.5); // b: only 50% slower fails
        let head = runs(&[("a", jitter(2000.0, 10, 1)), ("b", jitter(1300.0, 10, 2))]);
        let c = compare_legacy(
            &base,
            &head,
            &GateSettings::default(),
            "bench",
            &Machine::default(),
        );
        let verdict = |n: &str| c.functions.iter().find(|f| f.name == n).unwrap().verdict;
        assert_eq!(verdict("a"), Verdict::Ignored);
        assert_ne!(verdict("b"), Verdict::Regressed);
        assert!(c.passed());
        let s = GateSettings {
            threshold: 0.05,
            ..Default::default()
        };
        base.functions[1].threshold = None;
        let c = compare_legacy(&base, &head, &s, "bench", &Machine::default());
        assert_eq!(
            c.functions.iter().find(|f| f.name == "b").unwrap().verdict,
            Verdict::Regressed
        );
    }

    #[test]
    fn relative_mode_still_pins_one_regression_on_a_slower_machine() {
        let base = baseline(&[
            ("a", jitter(1000.0, 10, 1)),
            ("b", jitter(2000.0, 10, 2)),
            ("c", jitter(1500.0, 10, 3)),
        ]);
        // Everything 10% slower (the machine), and a 25% more on top of that.
        let head = runs(&[
            ("a", jitter(1000.0 * 1.1 * 1.25, 10, 4)),
            ("b", jitter(2000.0 * 1.1, 10, 5)),
            ("c", jitter(1500.0 * 1.1, 10, 6)),
        ]);
        let s = GateSettings {
            relative: true,
            ..Default::default()
        };
        let c = compare_legacy(&base, &head, &s, "bench", &Machine::default());
        let failing: Vec<_> = c.failures().map(|f| f.name.as_str()).collect();
        assert_eq!(failing, ["a"]);
        assert_eq!(c.with(Verdict::Improved).count(), 0, "{:?}", c.functions);
        let k = c.speed_factor.unwrap();
        assert!((k - 1.1).abs() < 0.02, "speed factor {k}");
    }

    #[test]
    fn everything_moving_together_is_called_out_in_absolute_mode() {
        let v = |k: f64| {
            [
                ("a", jitter(1000.0 * k, 10, 1)),
                ("b", jitter(2000.0 * k, 10, 2)),
                ("c", jitter(1500.0 * k, 10, 3)),
            ]
        };
        let c = compare_legacy(
            &baseline(&v(1.0)),
            &runs(&v(1.2)),
            &GateSettings::default(),
            "bench",
            &Machine::default(),
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("all gated functions moved together (median change +20.0%)")),
            "{:?}",
            c.warnings
        );
        let c = compare_legacy(
            &baseline(&v(1.0)),
            &runs(&v(1.0)),
            &GateSettings::default(),
            "bench",
            &Machine::default(),
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn another_machine_is_named() {
        let a = Machine {
            cpu_model: "A".into(),
            cores: 2,
            kernel: "6.18".into(),
        };
        let b = Machine {
            cpu_model: "B".into(),
            cores: 4,
            kernel: "6.18".into(),
        };
        let m = machine_mismatch_legacy(&a, &b).unwrap();
        assert!(
            m.contains("\"A\" vs \"B\"") && m.contains("2 vs 4 cores") && m.contains("--relative")
        );
        assert!(machine_mismatch_legacy(&a, &a).is_none());
    }
}
