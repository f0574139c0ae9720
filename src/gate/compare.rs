//! Turns base runs and head runs into verdicts, as DESIGN.md sets them: the run is the unit of evidence;
//! each run's figures are divided by that run's speed factor (`normalize.rs`), base and head alike; per
//! function a rank test, a Hodges–Lehmann ratio with its interval, Benjamini–Hochberg across functions, at
//! the confidence of the current look of the group-sequential rule (`sequential.rs`), a threshold on the
//! whole interval, "unchanged" only by equivalence, a floor on the share of time; the whole run's wall time
//! as a separate, absolute signal.
//!
//! Invariants: a verdict confirmed at an earlier look (regressed, improved) is kept; the comparison of a
//! look carries everything the next look needs (`previous`); pure (no I/O).
use std::collections::{BTreeMap, BTreeSet};

use super::baseline::Baseline;
use super::figures::{FuncKey, FuncRun, RunFigures};
use super::model::{
    Comparison, FunctionComparison, GateSettings, Metric, Rule, TotalComparison, Verdict,
};
use super::normalize::{self, Normalisation};
use super::sequential::{FunctionDecision, FunctionRuns, SequentialRule, SequentialSettings};
use super::stats;
use crate::profile::Machine;

/// What differs between the machine of the baseline and this one, if anything.
pub fn machine_mismatch(base: &Machine, head: &Machine) -> Option<String> {
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
            "the baseline was measured on another machine ({}); per-run normalisation factors out a \
             uniformly faster or slower machine, not one that is faster at some functions: for a verdict \
             that survives any machine difference compare base and head interleaved here \
             (perfgate check --against '<base command>')",
            diffs.join(", ")
        ))
    }
}

/// What the baseline says of one function besides its runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Override {
    /// Its own threshold, if set.
    pub threshold: Option<f64>,
    /// `ignore = true`: reported, never gated.
    pub ignore: bool,
}

/// The base side of a comparison: a stored baseline, or runs made here interleaved with the head's.
#[derive(Debug, Clone)]
pub struct Base {
    /// Per base run.
    pub runs: Vec<RunFigures>,
    /// The command the base runs ran.
    pub command: Vec<String>,
    /// The machine they ran on, when it may differ from the head's.
    pub machine: Option<Machine>,
    /// Per-function settings.
    pub overrides: BTreeMap<FuncKey, Override>,
    /// Interleaved with the head runs on this machine (A/B): run `i` of each side is a pair.
    pub interleaved: bool,
}

impl Base {
    /// A stored baseline.
    pub fn from_baseline(b: &Baseline) -> Base {
        let overrides = b
            .functions
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
            .collect();
        Base {
            runs: b.run_figures(),
            command: b.command.clone(),
            machine: Some(b.machine.clone()),
            overrides,
            interleaved: false,
        }
    }

    /// Runs of a base command made here, interleaved with the head's.
    pub fn interleaved(runs: Vec<RunFigures>, command: Vec<String>) -> Base {
        Base {
            runs,
            command,
            machine: None,
            overrides: BTreeMap::new(),
            interleaved: true,
        }
    }
}

/// The sequential rule for these settings and this many base runs (interleaved: looks count pairs).
pub fn rule_for(settings: &GateSettings, base: &Base) -> anyhow::Result<SequentialRule> {
    let mut s = SequentialSettings::from_gate(settings, base.runs.len().max(1));
    s.paired = base.interleaved;
    SequentialRule::new(s)
}

fn metric_value(f: &FuncRun, s: &GateSettings) -> f64 {
    match s.metric {
        Metric::SelfTime => f.self_mean,
        Metric::Inclusive => f.mean,
    }
}

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

/// One function's figures over the runs of one side (base or head), in run order.
#[derive(Debug, Default)]
struct Side {
    /// The metric per run, divided by the run's speed factor.
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
    fn of(
        runs: &[RunFigures],
        key: &FuncKey,
        settings: &GateSettings,
        factor: impl Fn(usize) -> f64,
    ) -> Side {
        let mut side = Side::default();
        for (i, r) in runs.iter().enumerate() {
            if let Some(f) = r.functions.get(key) {
                side.values.push(metric_value(f, settings) / factor(i));
                side.shares.push(share(f, r));
                side.calls.push(f.calls);
                side.totals.push(f.total);
                side.name = Some(f.name.clone());
            }
        }
        side
    }

    fn median_share(&self) -> f64 {
        stats::median(&self.shares).unwrap_or(0.0)
    }
}

/// Compares a stored baseline's runs with head runs at the look their number reaches.
pub fn compare(
    base: &Baseline,
    head: &[RunFigures],
    settings: &GateSettings,
    benchmark: &str,
    head_machine: &Machine,
) -> Comparison {
    compare_with(
        &Base::from_baseline(base),
        head,
        settings,
        benchmark,
        head_machine,
        None,
    )
}

/// Compares base runs with head runs. `previous` is the comparison of the look before (its confirmed
/// verdicts are kept); the first rule (`Rule::Legacy`) ignores it.
pub fn compare_with(
    base: &Base,
    head: &[RunFigures],
    settings: &GateSettings,
    benchmark: &str,
    head_machine: &Machine,
    previous: Option<&Comparison>,
) -> Comparison {
    if settings.rule == Rule::Legacy {
        return super::legacy::compare_legacy(
            &legacy_baseline(base),
            head,
            settings,
            benchmark,
            head_machine,
        );
    }
    let keys: BTreeSet<&FuncKey> = base
        .runs
        .iter()
        .chain(head.iter())
        .flat_map(|r| r.functions.keys())
        .collect();
    let gated = gated_keys(base, head, settings, &keys);
    let norm = if settings.normalise {
        normalize::normalise_figures(&base.runs, head, &gated, |f| metric_value(f, settings))
    } else {
        Normalisation::Absolute {
            functions: gated.len(),
            reason: "normalisation turned off (--absolute)".into(),
        }
    };
    let rule = rule_for(settings, base);
    let mut warnings = Vec::new();
    let mut rows: Vec<FunctionComparison> = Vec::new();
    let mut runs_of: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    let mut gated_rows = Vec::new();
    for key in keys {
        let b = Side::of(&base.runs, key, settings, |i| norm.base_factor(i));
        let h = Side::of(head, key, settings, |j| norm.head_factor(j));
        let o = base.overrides.get(key).copied().unwrap_or_default();
        let row = row_of(key, &b, &h, o, settings);
        if gated.contains(&key) && row.verdict == Verdict::Inconclusive {
            gated_rows.push(rows.len());
            runs_of.push((b.values, h.values, row.threshold));
        }
        rows.push(row);
    }
    let (look, looks, complete) = match &rule {
        Ok(rule) => {
            let look = rule.look_at(head.len()).unwrap_or(0);
            let before = previous_decisions(previous, &rows, &gated_rows);
            let functions: Vec<FunctionRuns> = runs_of
                .iter()
                .map(|(b, h, t)| FunctionRuns {
                    base: b,
                    head: h,
                    threshold: *t,
                })
                .collect();
            let decisions = rule.decide(&functions, look, before.as_deref());
            for (&i, d) in gated_rows.iter().zip(&decisions) {
                apply(&mut rows[i], d);
            }
            let complete =
                rule.should_stop(look, &decisions) || rule.next_look(head.len()).is_none();
            let looks = rule.looks().iter().map(|l| l.head_runs).collect();
            (Some(look), looks, complete)
        }
        Err(e) => {
            warnings.push(format!(
                "the sequential rule could not be set up ({e:#}): nothing was decided"
            ));
            (None, Vec::new(), true)
        }
    };
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
    if let (Normalisation::Absolute { reason, .. }, true) = (&norm, settings.normalise) {
        warnings.push(format!(
            "figures compared as measured, not normalised per run: {reason}"
        ));
    }
    if !base.interleaved && base.runs.len() < super::sequential::DEFAULT_BASE_RUNS {
        warnings.push(format!(
            "the baseline has {} runs; the sequential rule is designed for {}: re-record it with \
             perfgate baseline --runs {}",
            base.runs.len(),
            super::sequential::DEFAULT_BASE_RUNS,
            super::sequential::DEFAULT_BASE_RUNS
        ));
    }
    let total = rule
        .as_ref()
        .ok()
        .and_then(|r| total_of(r, base, head, settings));
    Comparison {
        benchmark: benchmark.to_string(),
        command: base.command.clone(),
        base_runs: base.runs.len(),
        head_runs: head.len(),
        settings: settings.clone(),
        machine_mismatch: base
            .machine
            .as_ref()
            .and_then(|m| machine_mismatch(m, head_machine)),
        speed_factor: norm.head_speed(),
        wall_ns: Some(head.iter().map(|r| r.wall_ns).sum()),
        functions: rows,
        warnings,
        normalisation: Some(describe(&norm)),
        total,
        mode: Some(
            if base.interleaved {
                "interleaved"
            } else {
                "baseline"
            }
            .into(),
        ),
        looks,
        look,
        complete,
    }
}

/// The functions the rule decides on: in both sides, not ignored, at least `min_share` of the traced
/// time.
fn gated_keys<'a>(
    base: &Base,
    head: &[RunFigures],
    settings: &GateSettings,
    keys: &BTreeSet<&'a FuncKey>,
) -> Vec<&'a FuncKey> {
    keys.iter()
        .copied()
        .filter(|k| {
            let ignored = base.overrides.get(*k).is_some_and(|o| o.ignore);
            let b = Side::of(&base.runs, k, settings, |_| 1.0);
            let h = Side::of(head, k, settings, |_| 1.0);
            !ignored
                && !b.values.is_empty()
                && !h.values.is_empty()
                && h.median_share() >= settings.min_share
        })
        .collect()
}

/// The previous look's decisions for the gated rows, in the same order; `None` when the set changed.
fn previous_decisions(
    previous: Option<&Comparison>,
    rows: &[FunctionComparison],
    gated_rows: &[usize],
) -> Option<Vec<FunctionDecision>> {
    let previous = previous?;
    let by_name: BTreeMap<(&str, &str), &FunctionComparison> = previous
        .functions
        .iter()
        .map(|f| ((f.module.as_str(), f.name.as_str()), f))
        .collect();
    gated_rows
        .iter()
        .map(|&i| {
            let r = &rows[i];
            let p = by_name.get(&(r.module.as_str(), r.name.as_str()))?;
            Some(decision_of(p))
        })
        .collect()
}

/// A row back as the rule's decision.
fn decision_of(f: &FunctionComparison) -> FunctionDecision {
    let verdict = match f.verdict {
        v @ (Verdict::Regressed | Verdict::Improved | Verdict::Unchanged) => v,
        _ => Verdict::Inconclusive,
    };
    FunctionDecision {
        verdict,
        decided_at: f.decided_at,
        ratio: f.ratio,
        low: f.ratio_low,
        high: f.ratio_high,
        confidence: f.confidence.unwrap_or(0.0),
        equivalence_low: None,
        equivalence_high: None,
        p_value: f.p_value,
        q_value: f.q_value,
        cv: f.cv,
        smallest_detectable: f.smallest_detectable,
    }
}

fn apply(row: &mut FunctionComparison, d: &FunctionDecision) {
    row.verdict = d.verdict;
    row.ratio = d.ratio;
    row.ratio_low = d.low;
    row.ratio_high = d.high;
    row.p_value = d.p_value;
    row.q_value = d.q_value;
    row.confidence = Some(d.confidence);
    row.cv = d.cv;
    row.smallest_detectable = d.smallest_detectable;
    row.decided_at = d.decided_at;
}

/// One function's row with its figures; `Inconclusive` until the rule decides (gated functions).
fn row_of(
    key: &FuncKey,
    b: &Side,
    h: &Side,
    o: Override,
    settings: &GateSettings,
) -> FunctionComparison {
    let share = if h.shares.is_empty() {
        b.median_share()
    } else {
        h.median_share()
    };
    let mut row = FunctionComparison {
        name: h
            .name
            .clone()
            .or_else(|| b.name.clone())
            .unwrap_or_else(|| key.symbol.clone()),
        module: key.module.clone(),
        verdict: Verdict::Inconclusive,
        base: stats::median(&b.values),
        head: stats::median(&h.values),
        ratio: None,
        ratio_low: None,
        ratio_high: None,
        p_value: None,
        q_value: None,
        share,
        base_calls: median_u64(&b.calls),
        head_calls: median_u64(&h.calls),
        threshold: o.threshold.unwrap_or(settings.threshold),
        head_total_ns: stats::median(&h.totals),
        confidence: None,
        cv: None,
        smallest_detectable: None,
        decided_at: None,
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
    if row.verdict != Verdict::Inconclusive && !b.values.is_empty() && !h.values.is_empty() {
        // Reported, not gated: the figures are still worth showing.
        if let Some(r) = stats::ratio_estimate(&b.values, &h.values, settings.confidence) {
            row.ratio = Some(r.estimate);
            row.ratio_low = Some(r.low);
            row.ratio_high = Some(r.high);
            row.confidence = Some(settings.confidence);
        }
    }
    row
}

/// `--gate-calls`: a changed call count fails, whatever the timing said (counts are exact).
fn gate_calls(rows: &mut [FunctionComparison]) {
    for row in rows {
        if row.calls_changed()
            && !matches!(
                row.verdict,
                Verdict::Ignored | Verdict::New | Verdict::Removed | Verdict::Regressed
            )
        {
            row.verdict = Verdict::CallsChanged;
        }
    }
}

/// The whole run's wall time, base against head, as measured, by the same rule.
fn total_of(
    rule: &SequentialRule,
    base: &Base,
    head: &[RunFigures],
    settings: &GateSettings,
) -> Option<TotalComparison> {
    let b: Vec<f64> = base
        .runs
        .iter()
        .map(|r| r.wall_ns)
        .filter(|w| *w > 0.0)
        .collect();
    let h: Vec<f64> = head
        .iter()
        .map(|r| r.wall_ns)
        .filter(|w| *w > 0.0)
        .collect();
    let (base_ns, head_ns) = (stats::median(&b)?, stats::median(&h)?);
    let look = rule.look_at(head.len()).unwrap_or(0);
    let d = rule.decide(
        &[FunctionRuns {
            base: &b,
            head: &h,
            threshold: settings.threshold,
        }],
        look,
        None,
    );
    let d = d.first()?;
    Some(TotalComparison {
        base_ns,
        head_ns,
        ratio: d.ratio,
        low: d.low,
        high: d.high,
        confidence: d.confidence,
        verdict: d.verdict,
    })
}

fn describe(n: &Normalisation) -> String {
    match n {
        Normalisation::PerRun { functions, .. } => {
            format!("per run, over {functions} gated functions")
        }
        Normalisation::Absolute { reason, .. } => format!("absolute ({reason})"),
    }
}

/// The base side as a [`Baseline`] for the first rule.
fn legacy_baseline(base: &Base) -> Baseline {
    let mut b = Baseline::from_runs(
        base.command.clone(),
        None,
        base.machine.clone().unwrap_or_else(Machine::current),
        super::baseline::GateOverrides::default(),
        &crate::plan::Selection::default(),
        &base.runs,
    );
    for f in &mut b.functions {
        let key = FuncKey {
            module: f.module.clone(),
            symbol: f.symbol.clone(),
        };
        if let Some(o) = base.overrides.get(&key) {
            f.threshold = o.threshold;
            f.ignore = o.ignore;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::baseline::GateOverrides;
    use crate::plan::Selection;

    /// Runs of functions with these per-run figures (all functions in every run).
    fn runs(values: &[(&str, Vec<f64>)]) -> Vec<RunFigures> {
        let n = values[0].1.len();
        (0..n)
            .map(|i| {
                let mut r = RunFigures {
                    wall_ns: values.iter().map(|(_, v)| v[i] * 100.0).sum(),
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

    /// Deterministic ±1% jitter around `level`, scaled per run by `scale`.
    fn series(level: f64, n: usize, k: u64, scale: impl Fn(usize) -> f64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let j = (((i as u64 * 7919 + k * 104_729) % 21) as f64 - 10.0) / 1000.0;
                level * (1.0 + j) * scale(i)
            })
            .collect()
    }

    fn functions(
        n: usize,
        runs: usize,
        seed: u64,
        scale: impl Fn(usize) -> f64 + Copy,
    ) -> Vec<(String, Vec<f64>)> {
        (0..n)
            .map(|f| {
                (
                    format!("f{f}"),
                    series(1000.0 + 250.0 * f as f64, runs, seed + f as u64, scale),
                )
            })
            .collect()
    }

    fn as_refs(v: &[(String, Vec<f64>)]) -> Vec<(&str, Vec<f64>)> {
        v.iter().map(|(n, x)| (n.as_str(), x.clone())).collect()
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

    fn settings() -> GateSettings {
        GateSettings {
            runs: 5,
            max_runs: 30,
            ..GateSettings::default()
        }
    }

    fn verdict_of<'a>(c: &'a Comparison, name: &str) -> &'a FunctionComparison {
        c.functions.iter().find(|f| f.name == name).unwrap()
    }

    #[test]
    fn a_regression_of_one_function_on_a_uniformly_slower_machine_is_found_and_nothing_else() {
        let base = functions(8, 30, 1, |_| 1.0);
        let mut head = functions(8, 20, 100, |i| 1.2 + 0.01 * i as f64);
        for v in &mut head[3].1 {
            *v *= 1.25;
        }
        let c = compare(
            &baseline(&as_refs(&base)),
            &runs(&as_refs(&head)),
            &settings(),
            "bench",
            &Machine::default(),
        );
        let failing: Vec<&str> = c.failures().map(|f| f.name.as_str()).collect();
        assert_eq!(failing, ["f3"], "{:#?}", c.functions);
        let f3 = verdict_of(&c, "f3");
        assert!((1.15..1.35).contains(&f3.ratio.unwrap()), "{f3:?}");
        assert!(c.normalisation.as_deref().unwrap().starts_with("per run"));
        // The whole run is slower and says so, on its own line.
        let total = c.total.as_ref().unwrap();
        assert_eq!(total.verdict, Verdict::Regressed, "{total:?}");
        assert_eq!(c.outcome(), "fail");
    }

    #[test]
    fn identical_runs_are_unchanged_by_equivalence_and_the_check_completes_early() {
        let base = functions(6, 30, 1, |_| 1.0);
        let head = functions(6, 5, 1, |_| 1.0);
        let c = compare(
            &baseline(&as_refs(&base)),
            &runs(&as_refs(&head)),
            &settings(),
            "bench",
            &Machine::default(),
        );
        assert!(
            c.functions.iter().all(|f| f.verdict == Verdict::Unchanged),
            "{:#?}",
            c.functions
        );
        assert!(c.complete);
        assert_eq!(c.look, Some(0));
        assert_eq!(c.outcome(), "pass");
    }

    #[test]
    fn a_confirmed_regression_is_final_and_undecided_is_inconclusive_with_its_noise() {
        let base = functions(6, 30, 1, |_| 1.0);
        let mut head = functions(6, 5, 7, |_| 1.0);
        for v in &mut head[0].1 {
            *v *= 1.3;
        }
        let s = settings();
        let b = baseline(&as_refs(&base));
        let first = compare(&b, &runs(&as_refs(&head)), &s, "bench", &Machine::default());
        assert_eq!(verdict_of(&first, "f0").verdict, Verdict::Regressed);
        // The next look's figures no longer show it: the verdict stays.
        let later = functions(6, 10, 9, |_| 1.0);
        let second = compare_with(
            &Base::from_baseline(&b),
            &runs(&as_refs(&later)),
            &s,
            "bench",
            &Machine::default(),
            Some(&first),
        );
        assert_eq!(verdict_of(&second, "f0").verdict, Verdict::Regressed);
        // Noisy figures: inconclusive, with the noise and what could have been detected.
        let noisy: Vec<(String, Vec<f64>)> = (0..6)
            .map(|f| {
                let level = 1000.0 + 250.0 * f as f64;
                let v = (0..5)
                    .map(|i| {
                        let h = ((i as u64 * 2_654_435_761 + f as u64 * 40_503) % 1000) as f64;
                        level * (1.0 + 0.6 * (h / 1000.0 - 0.5))
                    })
                    .collect();
                (format!("f{f}"), v)
            })
            .collect();
        let c = compare(
            &b,
            &runs(&as_refs(&noisy)),
            &s,
            "bench",
            &Machine::default(),
        );
        let undecided: Vec<&FunctionComparison> = c.with(Verdict::Inconclusive).collect();
        assert!(!undecided.is_empty(), "{:#?}", c.functions);
        for f in undecided {
            assert!(f.cv.unwrap() > 0.0, "{f:?}");
            assert!(f.smallest_detectable.unwrap() > 1.0, "{f:?}");
        }
        assert!(!c.complete, "more runs would help");
        assert_eq!(c.outcome(), "inconclusive");
        let failing = GateSettings {
            fail_on_inconclusive: true,
            ..s
        };
        let c = compare(
            &b,
            &runs(&as_refs(&noisy)),
            &failing,
            "bench",
            &Machine::default(),
        );
        assert_eq!(c.outcome(), "fail");
    }

    #[test]
    fn below_five_functions_the_figures_are_compared_as_measured_and_the_report_says_so() {
        let base = functions(3, 30, 1, |_| 1.0);
        let head = functions(3, 5, 1, |_| 1.0);
        let c = compare(
            &baseline(&as_refs(&base)),
            &runs(&as_refs(&head)),
            &settings(),
            "bench",
            &Machine::default(),
        );
        assert!(c.normalisation.as_deref().unwrap().starts_with("absolute"));
        assert!(
            c.warnings.iter().any(|w| w.contains("not normalised")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn a_short_baseline_gets_a_note_and_another_machine_a_recommendation() {
        let base = functions(6, 10, 1, |_| 1.0);
        let head = functions(6, 5, 1, |_| 1.0);
        let mut b = baseline(&as_refs(&base));
        b.machine.cpu_model = "other".into();
        let c = compare(
            &b,
            &runs(&as_refs(&head)),
            &settings(),
            "bench",
            &Machine::default(),
        );
        assert!(
            c.warnings.iter().any(|w| w.contains("--runs 30")),
            "{:?}",
            c.warnings
        );
        assert!(c.machine_mismatch.as_deref().unwrap().contains("--against"));
    }

    #[test]
    fn the_first_rule_is_still_there_for_comparison() {
        let base = functions(6, 10, 1, |_| 1.0);
        let head = functions(6, 10, 1, |_| 1.0);
        let s = GateSettings {
            rule: Rule::Legacy,
            ..settings()
        };
        let c = compare(
            &baseline(&as_refs(&base)),
            &runs(&as_refs(&head)),
            &s,
            "bench",
            &Machine::default(),
        );
        assert!(c.normalisation.is_none());
        assert!(c.passed());
    }
}
