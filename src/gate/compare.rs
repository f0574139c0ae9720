//! Turns base runs and head runs into verdicts, as DESIGN.md sets them: the run is the unit of evidence;
//! each run's figures are divided by that run's speed factor (`normalize.rs`, per metric), base and head
//! alike; per (function, metric) pair a rank test, a Hodges–Lehmann ratio with its interval,
//! Benjamini–Hochberg across every pair of the look, at the confidence of the current look of the
//! group-sequential rule (`sequential.rs`), a threshold on the whole interval (the mean's or the
//! quantiles'), "unchanged" only by equivalence, a floor on the share of time; the whole run's wall time as
//! a separate, absolute signal.
//!
//! Several metrics (`GateSettings::metrics`, per function in the baseline): each gated pair gets its own
//! verdict; a function's verdict is its worst pair's (regressed, then improved, then inconclusive, then
//! unchanged), and its row's figures are that pair's (`FunctionComparison::metric` says which). A quantile
//! is gated only for functions with enough calls per run ([`Metric::min_calls`]) and a baseline that has
//! it; what is not gated is said in the row's notes.
//!
//! Invariants: a verdict confirmed at an earlier look (regressed, improved) is kept, per pair; the
//! comparison of a look carries everything the next look needs (`previous`); pure (no I/O).
use std::collections::{BTreeMap, BTreeSet};

use super::baseline::Baseline;
use super::figures::{FuncKey, FuncRun, RunFigures};
use super::model::{
    Bucket, Comparison, Distribution, Figures, FunctionComparison, GateSettings, Metric,
    MetricComparison, Quantiles, Rule, Statistic, TimeKind, TotalComparison, Verdict,
};
use super::normalize::{self, Normalisation};
use super::sequential::{FunctionDecision, FunctionRuns, SequentialRule, SequentialSettings};
use super::stats;
use crate::profile::units::duration;
use crate::profile::{Histogram, Machine};

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
#[derive(Debug, Clone, Default)]
pub struct Override {
    /// Its own threshold of the mean, if set.
    pub threshold: Option<f64>,
    /// Its own threshold of the quantiles, if set.
    pub quantile_threshold: Option<f64>,
    /// Its own metrics, if set.
    pub metrics: Option<Vec<Metric>>,
    /// `ignore = true`: reported, never gated.
    pub ignore: bool,
}

static NO_OVERRIDE: Override = Override {
    threshold: None,
    quantile_threshold: None,
    metrics: None,
    ignore: false,
};

impl Override {
    fn threshold_of(&self, m: Metric, settings: &GateSettings) -> f64 {
        let own = if m.is_quantile() {
            self.quantile_threshold
                .map(|t| t * m.statistic.threshold_scale())
        } else {
            self.threshold
        };
        own.unwrap_or_else(|| settings.threshold_of(m))
    }

    fn metrics<'a>(&'a self, settings: &'a GateSettings) -> &'a [Metric] {
        self.metrics.as_deref().unwrap_or(&settings.metrics)
    }
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
    /// Per function, every base run's calls merged: inclusive, then self time (a stored baseline keeps
    /// them so; interleaved runs carry their own).
    pub histograms: BTreeMap<FuncKey, [Option<Histogram>; 2]>,
}

impl Base {
    /// A stored baseline.
    pub fn from_baseline(b: &Baseline) -> Base {
        let key = |f: &super::baseline::BaselineFunction| FuncKey {
            module: f.module.clone(),
            symbol: f.symbol.clone(),
        };
        let overrides = b
            .functions
            .iter()
            .map(|f| {
                let o = Override {
                    threshold: f.threshold,
                    quantile_threshold: f.quantile_threshold,
                    metrics: f.metrics.clone(),
                    ignore: f.ignore,
                };
                (key(f), o)
            })
            .collect();
        let histograms = b
            .functions
            .iter()
            .map(|f| (key(f), [f.incl_hist.clone(), f.self_hist.clone()]))
            .collect();
        Base {
            runs: b.run_figures(),
            command: b.command.clone(),
            machine: Some(b.machine.clone()),
            overrides,
            interleaved: false,
            histograms,
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
            histograms: BTreeMap::new(),
        }
    }

    /// The per-function settings of `k` (none: the gate's).
    fn override_of(&self, k: &FuncKey) -> &Override {
        self.overrides.get(k).unwrap_or(&NO_OVERRIDE)
    }

    /// One function's base calls merged, in one kind of time: the stored histogram, else the runs'.
    fn histogram(&self, key: &FuncKey, time: TimeKind) -> Histogram {
        let slot = match time {
            TimeKind::Inclusive => 0,
            TimeKind::SelfTime => 1,
        };
        match self.histograms.get(key).and_then(|h| h[slot].clone()) {
            Some(h) => h,
            None => merged_histogram(&self.runs, key, time),
        }
    }
}

/// One function's calls of every run merged, in one kind of time.
fn merged_histogram(runs: &[RunFigures], key: &FuncKey, time: TimeKind) -> Histogram {
    let mut out: Option<Histogram> = None;
    for f in runs.iter().filter_map(|r| r.functions.get(key)) {
        let h = f.histogram(time);
        if h.count() == 0 {
            continue;
        }
        match &mut out {
            Some(m) => m.merge(h),
            None => out = Some(h.clone()),
        }
    }
    out.unwrap_or_default()
}

/// The sequential rule for these settings and this many base runs (interleaved: looks count pairs).
pub fn rule_for(settings: &GateSettings, base: &Base) -> anyhow::Result<SequentialRule> {
    let mut s = SequentialSettings::from_gate(settings, base.runs.len().max(1));
    s.paired = base.interleaved;
    SequentialRule::new(s)
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

/// One function over the runs of one side (base or head), in run order: what does not depend on the
/// metric.
#[derive(Debug, Default)]
struct Side {
    /// Index of each run that has the function.
    runs: Vec<usize>,
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
    fn of(runs: &[RunFigures], key: &FuncKey) -> Side {
        let mut side = Side::default();
        for (i, r) in runs.iter().enumerate() {
            if let Some(f) = r.functions.get(key) {
                side.runs.push(i);
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

    fn present(&self) -> bool {
        !self.runs.is_empty()
    }

    /// The metric per run, divided by the run's speed factor, at least [`RESOLUTION_NS`].
    fn values(
        &self,
        runs: &[RunFigures],
        key: &FuncKey,
        m: Metric,
        factor: impl Fn(usize) -> f64,
    ) -> Vec<f64> {
        self.figures(runs, key, |f| f.value(m), factor)
    }

    /// The runs' totals of one kind of time as measured (the probe cost taken out put back), like
    /// [`Side::values`].
    fn raw_totals(
        &self,
        runs: &[RunFigures],
        key: &FuncKey,
        time: TimeKind,
        factor: impl Fn(usize) -> f64,
    ) -> Vec<f64> {
        let raw = |f: &FuncRun| {
            let (left, probe) = f.total_and_probe(time);
            left + probe
        };
        self.figures(runs, key, raw, factor)
    }

    /// `of` each run's figures of the function, divided by the run's speed factor, at least
    /// [`RESOLUTION_NS`].
    fn figures(
        &self,
        runs: &[RunFigures],
        key: &FuncKey,
        of: impl Fn(&FuncRun) -> f64,
        factor: impl Fn(usize) -> f64,
    ) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|&i| Some(of(runs[i].functions.get(key)?) / factor(i)))
            .map(|v| if v < RESOLUTION_NS { RESOLUTION_NS } else { v })
            .collect()
    }
}

/// The threshold of a total gated as measured, probe cost in (its compensated figure says nothing): the
/// probe's cost moves with the machine by ±15% from one calibration to the next (six `record --verbose`
/// on a 2-core AMD VM, 2026-12-02), and a function mostly probe moves with it, so only a doubling counts
/// (twice the calls, or calls that now take as long again as their probe): libsqlite3's `sqlite3OsRead`,
/// a single-stepped probe over a ~3 µs read, called 8,825 times a run instead of 2 with the sqlite
/// fixture's knob, is left nothing by a calibration 15% high, and was then not gated at all (the likely
/// cause of one `bench cost` knob check in four that flagged nothing, 2026-12-02).
const RAW_TOTAL_THRESHOLD: f64 = 1.0;

/// The smallest figure the gate compares, ns: the clock's resolution. Compensation takes the probes'
/// calibrated cost out of every call, and a call that cost less than that estimate (libsqlite3's
/// `sqlite3OsRead` of the file's 100-byte header) is left at 0 ns. Ratios are taken on the log scale, so
/// a run at 0 ns would leave the function without a ratio and undecided for ever, whatever its head
/// runs did (8,825 reads a run instead of 2 in `bench cost`'s sqlite knob); read as 1 ns it is compared
/// like any other run (ranks are unchanged, ties at the floor aside).
const RESOLUTION_NS: f64 = 1.0;

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

/// Per metric: the functions it is gated for and the runs' speed factors taken over them.
struct MetricPlan<'a> {
    metric: Metric,
    functions: BTreeSet<&'a FuncKey>,
    norm: Normalisation,
}

/// One gated (function, metric) pair: its row, its metric's plan, its figures.
struct Pair {
    row: usize,
    plan: usize,
    base: Vec<f64>,
    head: Vec<f64>,
    threshold: f64,
}

/// How well the probe cost is known: `perfgate record --verbose`, ten calibrations within an hour on an idle
/// 2-core VM, gave single-step 16.9–18.2 µs, emulated 746–834 ns, 5-byte nop 496–543 ns per call, ±4–5%;
/// the baseline's and the check's calibrations are separate, so a figure the compensation took much out
/// of moves by that much of what was taken, though the code did not change.
const CALIBRATION_SPREAD: f64 = 0.05;

/// Beyond this spread (the calibration's error alone could double the figure, or take all of it) a metric
/// says nothing: it is not gated, and a note says why.
const MAX_COMPENSATION_SPREAD: f64 = 1.0;

/// What the compensation's own error can do to one function's time of one kind.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CompensationSpread {
    /// The fraction the figure can move by with the calibration off by [`CALIBRATION_SPREAD`]: probe cost
    /// taken out over what is left, times that; the larger of base and head (medians over their runs).
    spread: f64,
    /// On the side that gave `spread`: probe cost taken out per call, ns (median over its runs).
    probe_per_call: f64,
    /// And the time left per call, ns.
    left_per_call: f64,
}

/// [`CompensationSpread`] of a function in one kind of time; `None` when no run says what was taken out
/// (no calibration, or a baseline older than the figure).
fn compensation_spread(
    base_runs: &[RunFigures],
    head: &[RunFigures],
    b: &Side,
    h: &Side,
    key: &FuncKey,
    time: TimeKind,
) -> Option<CompensationSpread> {
    let side = |runs: &[RunFigures], side: &Side| -> Option<CompensationSpread> {
        let per_run: Vec<(f64, f64, f64)> = side
            .runs
            .iter()
            .filter_map(|&i| runs[i].functions.get(key))
            .filter(|f| f.calls > 0)
            .map(|f| {
                let (left, probe) = f.total_and_probe(time);
                (probe, left, f.calls as f64)
            })
            .collect();
        if per_run.iter().all(|&(probe, _, _)| probe <= 0.0) {
            return None;
        }
        let of = |g: &dyn Fn(&(f64, f64, f64)) -> f64| {
            stats::median(&per_run.iter().map(g).collect::<Vec<_>>()).unwrap_or(0.0)
        };
        Some(CompensationSpread {
            spread: CALIBRATION_SPREAD * of(&|&(p, l, _)| p / l.max(RESOLUTION_NS)),
            probe_per_call: of(&|&(p, _, n)| p / n),
            left_per_call: of(&|&(_, l, n)| l / n),
        })
    };
    [side(base_runs, b), side(head, h)]
        .into_iter()
        .flatten()
        .max_by(|x, y| x.spread.total_cmp(&y.spread))
}

/// Why metric `m` is not gated for a gated function, or `None` when it is.
fn not_gated_because(base: &Base, b: &Side, h: &Side, key: &FuncKey, m: Metric) -> Option<String> {
    let need = m.min_calls();
    let calls = median_u64(&b.calls)
        .unwrap_or(0)
        .min(median_u64(&h.calls).unwrap_or(0));
    if calls < need {
        return Some(format!(
            "{} not gated: {calls} calls per run, a {} needs {need} or more",
            m.short(),
            m.statistic
                .quantile()
                .map_or("mean".into(), |q| format!("{:.0}th percentile", q * 100.0))
        ));
    }
    if m.statistic == Statistic::Total {
        let mut all = b.calls.iter().chain(&h.calls);
        if let Some(first) = all.next() {
            if all.all(|c| c == first) {
                let calls = if *first == 1 { "call" } else { "calls" };
                return Some(format!(
                    "{} not gated: {first} {calls} in every run, so it moves with the mean",
                    m.short(),
                ));
            }
        }
    }
    if !m.is_quantile() {
        // A mean or a total is in every baseline (0 after compensation is a figure): only a quantile
        // can be missing from an older one.
        return None;
    }
    let in_base = b.runs.iter().any(|&i| {
        base.runs[i]
            .functions
            .get(key)
            .is_some_and(|f| f.value(m) > 0.0)
    });
    if !in_base {
        return Some(format!(
            "{} not gated: the baseline has no {} figures (recorded by an older perfgate: perfgate baseline --update)",
            m.short(),
            m.name()
        ));
    }
    None
}

/// Compares base runs with head runs. `previous` is the comparison of the look before (its confirmed
/// verdicts are kept); the first rule (`Rule::Legacy`) ignores it. The (function, metric) pairs are laid
/// out ([`metric_plans`], [`lay_out`]), decided together ([`decide`]: one Benjamini–Hochberg over all
/// of them) and folded back into the rows.
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
    let sides: BTreeMap<&FuncKey, (Side, Side)> = keys
        .iter()
        .map(|&k| (k, (Side::of(&base.runs, k), Side::of(head, k))))
        .collect();
    let gated = gated_keys(&sides, settings, base);
    let (plans, notes) = metric_plans(base, head, settings, &sides, &gated);
    let rule = rule_for(settings, base);
    let (mut rows, row_keys, pairs) = lay_out(base, head, settings, &sides, &plans, notes);
    let mut warnings = Vec::new();
    let (look, looks, complete) = match &rule {
        Ok(rule) => decide(rule, previous, &pairs, &plans, &mut rows, head.len()),
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
    finish_rows(&mut rows, &row_keys, base, head);
    warnings.extend(figure_warnings(base, &plans, settings));
    let primary = &plans[0].norm;
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
        speed_factor: primary.head_speed(),
        wall_ns: Some(head.iter().map(|r| r.wall_ns).sum()),
        functions: rows,
        warnings,
        normalisation: Some(describe(primary)),
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

/// Every metric in use (the settings' first, in their order, then the per-function ones), each with
/// the gated functions it is gated for and their runs' speed factors; and per function, why a metric of
/// it is not gated.
fn metric_plans<'a>(
    base: &Base,
    head: &[RunFigures],
    settings: &GateSettings,
    sides: &BTreeMap<&'a FuncKey, (Side, Side)>,
    gated: &[&'a FuncKey],
) -> (Vec<MetricPlan<'a>>, BTreeMap<&'a FuncKey, Vec<String>>) {
    let override_of = |k: &FuncKey| base.override_of(k);
    let mut metrics: Vec<Metric> = settings.metrics.clone();
    for k in gated {
        for m in override_of(k).metrics(settings) {
            if !metrics.contains(m) {
                metrics.push(*m);
            }
        }
    }
    let mut notes: BTreeMap<&FuncKey, Vec<String>> = BTreeMap::new();
    let plans: Vec<MetricPlan> = metrics
        .iter()
        .map(|&m| {
            let functions: BTreeSet<&FuncKey> = gated
                .iter()
                .copied()
                .filter(|k| override_of(k).metrics(settings).contains(&m))
                .filter(|k| {
                    let (b, h) = &sides[k];
                    match not_gated_because(base, b, h, k, m) {
                        Some(why) => {
                            notes.entry(k).or_default().push(why);
                            false
                        }
                        None => true,
                    }
                })
                .collect();
            let list: Vec<&FuncKey> = functions.iter().copied().collect();
            let norm = if settings.normalise {
                normalize::normalise_figures(&base.runs, head, &list, |f| f.value(m))
            } else {
                Normalisation::Absolute {
                    functions: list.len(),
                    reason: "normalisation turned off (--absolute)".into(),
                }
            };
            MetricPlan {
                metric: m,
                functions,
                norm,
            }
        })
        .collect();
    (plans, notes)
}

/// One row per function with the figures of its first metric (and its notes), the key of each row,
/// and the gated (function, metric) pairs of the rows the rule has to decide.
fn lay_out<'a>(
    base: &Base,
    head: &[RunFigures],
    settings: &GateSettings,
    sides: &BTreeMap<&'a FuncKey, (Side, Side)>,
    plans: &[MetricPlan],
    mut notes: BTreeMap<&'a FuncKey, Vec<String>>,
) -> (Vec<FunctionComparison>, Vec<&'a FuncKey>, Vec<Pair>) {
    let mut rows: Vec<FunctionComparison> = Vec::new();
    let mut row_keys: Vec<&FuncKey> = Vec::new();
    let mut pairs: Vec<Pair> = Vec::new();
    for (&key, (b, h)) in sides {
        let o = base.override_of(key);
        let first = o.metrics(settings).first().copied().unwrap_or_default();
        let first_plan = plans.iter().find(|p| p.metric == first);
        let (bv, hv) = match first_plan {
            Some(p) => (
                b.values(&base.runs, key, first, |i| p.norm.base_factor(i)),
                h.values(head, key, first, |j| p.norm.head_factor(j)),
            ),
            None => (
                b.values(&base.runs, key, first, |_| 1.0),
                h.values(head, key, first, |_| 1.0),
            ),
        };
        let mut row = row_of(key, b, h, &bv, &hv, o, first, settings);
        row.notes = notes.remove(key).unwrap_or_default();
        if row.verdict == Verdict::Inconclusive {
            let before = pairs.len();
            for m in o.metrics(settings) {
                let Some(pi) = plans
                    .iter()
                    .position(|p| p.metric == *m && p.functions.contains(key))
                else {
                    continue;
                };
                let norm = &plans[pi].norm;
                let mut threshold = o.threshold_of(*m, settings);
                // A total the compensation leaves nothing of is compared as measured.
                let mut as_measured = false;
                if let Some(c) = compensation_spread(&base.runs, head, b, h, key, m.time) {
                    let left = format!(
                        "{} of probe cost taken out per call leaves {}",
                        duration(c.probe_per_call),
                        duration(c.left_per_call)
                    );
                    let unknown = format!(
                        "which the calibration's ±{:.0}% moves by more than itself",
                        CALIBRATION_SPREAD * 100.0
                    );
                    if c.spread > MAX_COMPENSATION_SPREAD && m.statistic == Statistic::Total {
                        row.notes.push(format!(
                            "{} gated on the time as measured, probe cost in, at {:.0}%: {left}, \
                             {unknown}; a change in calls still shows",
                            m.short(),
                            RAW_TOTAL_THRESHOLD * 100.0,
                        ));
                        as_measured = true;
                        threshold = RAW_TOTAL_THRESHOLD;
                    } else if c.spread > MAX_COMPENSATION_SPREAD {
                        row.notes
                            .push(format!("{} not gated: {left}, {unknown}", m.short()));
                        continue;
                    } else if c.spread > threshold {
                        row.notes.push(format!(
                            "{} threshold {:.0}%, not {:.0}%: {left}, and the calibration is known to \
                             ±{:.0}%",
                            m.short(),
                            c.spread * 100.0,
                            threshold * 100.0,
                            CALIBRATION_SPREAD * 100.0
                        ));
                        threshold = c.spread;
                    }
                }
                let (base_values, head_values) = if as_measured {
                    (
                        b.raw_totals(&base.runs, key, m.time, |i| norm.base_factor(i)),
                        h.raw_totals(head, key, m.time, |j| norm.head_factor(j)),
                    )
                } else {
                    (
                        b.values(&base.runs, key, *m, |i| norm.base_factor(i)),
                        h.values(head, key, *m, |j| norm.head_factor(j)),
                    )
                };
                pairs.push(Pair {
                    row: rows.len(),
                    plan: pi,
                    base: base_values,
                    head: head_values,
                    threshold,
                });
            }
            if pairs.len() == before {
                row.notes.push(
                    "no metric of this function could be gated: it stays inconclusive".into(),
                );
            }
        }
        rows.push(row);
        row_keys.push(key);
    }
    (rows, row_keys, pairs)
}

/// The rule's decisions on every pair at the look `head_runs` reaches, put into their rows (each row
/// then settled to its worst metric): the look, the rule's looks, and whether the check is complete.
fn decide(
    rule: &SequentialRule,
    previous: Option<&Comparison>,
    pairs: &[Pair],
    plans: &[MetricPlan],
    rows: &mut [FunctionComparison],
    head_runs: usize,
) -> (Option<usize>, Vec<usize>, bool) {
    let look = rule.look_at(head_runs).unwrap_or(0);
    let before = previous_decisions(
        previous,
        &pairs
            .iter()
            .map(|p| (&rows[p.row], plans[p.plan].metric))
            .collect::<Vec<_>>(),
    );
    let functions: Vec<FunctionRuns> = pairs
        .iter()
        .map(|p| FunctionRuns {
            base: &p.base,
            head: &p.head,
            threshold: p.threshold,
        })
        .collect();
    let decisions = rule.decide(&functions, look, before.as_deref());
    for (p, d) in pairs.iter().zip(&decisions) {
        let mc = metric_comparison(plans[p.plan].metric, p, d);
        rows[p.row].metrics.push(mc);
    }
    for row in rows.iter_mut() {
        settle(row);
    }
    let complete = rule.should_stop(look, &decisions) || rule.next_look(head_runs).is_none();
    let looks = rule.looks().iter().map(|l| l.head_runs).collect();
    (Some(look), looks, complete)
}

/// The distribution of each regressed or improved function, then the rows in order of verdict and,
/// within one, of share (largest first).
fn finish_rows(
    rows: &mut [FunctionComparison],
    row_keys: &[&FuncKey],
    base: &Base,
    head: &[RunFigures],
) {
    for (row, key) in rows.iter_mut().zip(row_keys) {
        if matches!(row.verdict, Verdict::Regressed | Verdict::Improved) {
            let time = row.metric.unwrap_or_default().time;
            row.distribution = Some(distribution(base, head, key, time));
        }
    }
    rows.sort_by(|a, b| {
        a.verdict.cmp(&b.verdict).then(
            b.share
                .partial_cmp(&a.share)
                .unwrap_or(std::cmp::Ordering::Equal),
        )
    });
}

/// What the figures compared lack: a metric not normalised per run although asked, a baseline of fewer
/// runs than the rule is designed for.
fn figure_warnings(base: &Base, plans: &[MetricPlan], settings: &GateSettings) -> Vec<String> {
    let mut warnings = Vec::new();
    if let (Normalisation::Absolute { reason, .. }, true) = (&plans[0].norm, settings.normalise) {
        warnings.push(format!(
            "figures compared as measured, not normalised per run: {reason}"
        ));
    }
    for p in plans.iter().skip(1) {
        if let (Normalisation::Absolute { reason, .. }, true, false) =
            (&p.norm, settings.normalise, p.functions.is_empty())
        {
            warnings.push(format!(
                "{} compared as measured, not normalised per run: {reason}",
                p.metric.label()
            ));
        }
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
    warnings
}

/// The functions the rule decides on: in both sides, not ignored, at least `min_share` of the traced
/// time.
fn gated_keys<'a>(
    sides: &BTreeMap<&'a FuncKey, (Side, Side)>,
    settings: &GateSettings,
    base: &Base,
) -> Vec<&'a FuncKey> {
    sides
        .iter()
        .filter(|(k, (b, h))| {
            !base.override_of(k).ignore
                && b.present()
                && h.present()
                && h.median_share() >= settings.min_share
        })
        .map(|(k, _)| *k)
        .collect()
}

/// The previous look's decisions for these (row, metric) pairs, in the same order; `None` when the set
/// changed.
fn previous_decisions(
    previous: Option<&Comparison>,
    pairs: &[(&FunctionComparison, Metric)],
) -> Option<Vec<FunctionDecision>> {
    let previous = previous?;
    let by_pair: BTreeMap<(&str, &str, Metric), &MetricComparison> = previous
        .functions
        .iter()
        .flat_map(|f| {
            f.metrics
                .iter()
                .map(move |m| ((f.module.as_str(), f.name.as_str(), m.metric), m))
        })
        .collect();
    pairs
        .iter()
        .map(|(r, m)| {
            let p = by_pair.get(&(r.module.as_str(), r.name.as_str(), *m))?;
            Some(decision_of(p))
        })
        .collect()
}

/// A pair back as the rule's decision.
fn decision_of(m: &MetricComparison) -> FunctionDecision {
    let verdict = match m.verdict {
        v @ (Verdict::Regressed | Verdict::Improved | Verdict::Unchanged) => v,
        _ => Verdict::Inconclusive,
    };
    FunctionDecision {
        verdict,
        decided_at: m.figures.decided_at,
        ratio: m.figures.ratio,
        low: m.figures.ratio_low,
        high: m.figures.ratio_high,
        confidence: m.figures.confidence.unwrap_or(0.0),
        equivalence_low: None,
        equivalence_high: None,
        p_value: m.figures.p_value,
        q_value: m.figures.q_value,
        cv: m.figures.cv,
        smallest_detectable: m.figures.smallest_detectable,
    }
}

fn metric_comparison(metric: Metric, p: &Pair, d: &FunctionDecision) -> MetricComparison {
    MetricComparison {
        metric,
        verdict: d.verdict,
        figures: Figures {
            base: stats::median(&p.base),
            head: stats::median(&p.head),
            ratio: d.ratio,
            ratio_low: d.low,
            ratio_high: d.high,
            p_value: d.p_value,
            q_value: d.q_value,
            threshold: p.threshold,
            confidence: Some(d.confidence),
            cv: d.cv,
            smallest_detectable: d.smallest_detectable,
            decided_at: d.decided_at,
        },
    }
}

/// The function's verdict and figures from its metrics: the worst verdict, the first metric listed
/// among those with it. Rows without gated metrics keep what [`row_of`] gave them.
fn settle(row: &mut FunctionComparison) {
    let Some(worst) = row.metrics.iter().min_by_key(|m| m.verdict) else {
        return;
    };
    row.verdict = worst.verdict;
    row.metric = Some(worst.metric);
    row.figures = worst.figures.clone();
}

/// One function's row with the figures of its first metric; `Inconclusive` until the rule decides
/// (gated functions).
#[allow(clippy::too_many_arguments)]
fn row_of(
    key: &FuncKey,
    b: &Side,
    h: &Side,
    base_values: &[f64],
    head_values: &[f64],
    o: &Override,
    metric: Metric,
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
        figures: Figures {
            base: stats::median(base_values),
            head: stats::median(head_values),
            threshold: o.threshold_of(metric, settings),
            ..Figures::default()
        },
        share,
        base_calls: median_u64(&b.calls),
        head_calls: median_u64(&h.calls),
        head_total_ns: stats::median(&h.totals),
        metric: Some(metric),
        ..FunctionComparison::default()
    };
    row.verdict = if o.ignore {
        Verdict::Ignored
    } else if !b.present() {
        Verdict::New
    } else if !h.present() {
        Verdict::Removed
    } else if share < settings.min_share {
        Verdict::BelowFloor
    } else {
        Verdict::Inconclusive
    };
    if row.verdict != Verdict::Inconclusive && b.present() && h.present() {
        // Reported, not gated: the figures are still worth showing.
        if let Some(r) = stats::ratio_estimate(base_values, head_values, settings.confidence) {
            row.figures.ratio = Some(r.estimate);
            row.figures.ratio_low = Some(r.low);
            row.figures.ratio_high = Some(r.high);
            row.figures.confidence = Some(settings.confidence);
        }
    }
    row
}

/// Base against head quantiles and merged histograms of one function in one kind of time.
fn distribution(base: &Base, head: &[RunFigures], key: &FuncKey, time: TimeKind) -> Distribution {
    let base_hist = base.histogram(key, time);
    let head_hist = merged_histogram(head, key, time);
    Distribution {
        time: Some(time),
        base: quantiles_of(&base.runs, key, time),
        head: quantiles_of(head, key, time),
        base_histogram: buckets(&base_hist),
        head_histogram: buckets(&head_hist),
    }
}

/// Medians over the runs of each run's quantiles, as measured (not normalised).
pub fn quantiles_of(runs: &[RunFigures], key: &FuncKey, time: TimeKind) -> Quantiles {
    let of = |s: Statistic| -> f64 {
        let v: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.functions.get(key))
            .map(|f| f.value(Metric { statistic: s, time }))
            .collect();
        stats::median(&v).unwrap_or(0.0)
    };
    let max: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.functions.get(key))
        .map(|f| f.max_of(time))
        .collect();
    Quantiles {
        p50: of(Statistic::P50),
        p90: of(Statistic::P90),
        p99: of(Statistic::P99),
        max: stats::median(&max).unwrap_or(0.0),
        mean: of(Statistic::Mean),
    }
}

/// A histogram's non-empty buckets with their bounds.
pub fn buckets(h: &Histogram) -> Vec<Bucket> {
    h.ranges()
        .map(|(low_ns, high_ns, count)| Bucket {
            low_ns,
            high_ns,
            count,
        })
        .collect()
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

    /// Runs of `functions(4, n, seed)` plus `read`, called `calls` times a run at ~1 µs a call.
    fn with_read(n: usize, seed: u64, calls: u64) -> Vec<RunFigures> {
        let mut rs = runs(&as_refs(&functions(4, n, seed, |_| 1.0)));
        let per_call = series(1000.0, n, seed + 50, |_| 1.0);
        for (r, t) in rs.iter_mut().zip(per_call) {
            let total = t * calls as f64;
            r.functions.insert(
                FuncKey {
                    module: "bench".into(),
                    symbol: "read".into(),
                },
                FuncRun {
                    name: "read".into(),
                    calls,
                    mean: t,
                    self_mean: t,
                    total,
                    self_total: total,
                    ..Default::default()
                },
            );
            r.total_self = r.functions.values().map(|f| f.self_total).sum();
            r.wall_ns = r.total_self;
        }
        rs
    }

    #[test]
    fn a_function_called_far_more_often_at_the_same_cost_per_call_regresses_by_its_total_only() {
        let base_runs = with_read(10, 1, 2);
        let base = Baseline::from_runs(
            vec!["./bench".into()],
            None,
            Machine::default(),
            GateOverrides::default(),
            &Selection::default(),
            &base_runs,
        );
        let head = with_read(10, 300, 400);
        let c = compare(&base, &head, &settings(), "bench", &Machine::default());
        let read = verdict_of(&c, "read");
        assert_eq!(read.verdict, Verdict::Regressed, "{read:#?}");
        assert_eq!(read.metric, Some(Metric::TOTAL_SELF), "{read:#?}");
        let mean = read
            .metrics
            .iter()
            .find(|m| m.metric == Metric::MEAN_SELF)
            .unwrap();
        assert_ne!(mean.verdict, Verdict::Regressed, "{read:#?}");
        assert!(read.figures.ratio.unwrap() > 100.0, "{read:#?}");
        // The functions called as often in every run: their totals would repeat their means, so they
        // are not gated, and a note says why.
        for f in c.functions.iter().filter(|f| f.name != "read") {
            assert!(
                !matches!(f.verdict, Verdict::Regressed | Verdict::Improved),
                "{f:#?}"
            );
            assert!(
                f.metrics.iter().all(|m| m.metric != Metric::TOTAL_SELF),
                "{f:#?}"
            );
            assert!(
                f.notes.iter().any(|n| n
                    == "total self not gated: 100 calls in every run, so it moves with the mean"),
                "{f:#?}"
            );
        }
        // Gated on the mean alone, the same change is not seen.
        let mean_only = GateSettings {
            metrics: vec![Metric::MEAN_SELF],
            ..settings()
        };
        let c = compare(&base, &head, &mean_only, "bench", &Machine::default());
        assert_ne!(verdict_of(&c, "read").verdict, Verdict::Regressed);
    }

    /// Runs of `functions(6, n, seed)`, f5 `scale` times slower, with `probe` times f5's self time
    /// taken out of it as probe cost (a parent of many traced calls, or a leaf under a costly probe).
    fn with_probe(n: usize, seed: u64, scale: f64, probe: f64) -> Vec<RunFigures> {
        let mut rs = runs(&as_refs(&functions(6, n, seed, |_| 1.0)));
        for r in &mut rs {
            for f in r.functions.values_mut() {
                f.probe = 0.1 * f.total;
                f.self_probe = 0.1 * f.self_total;
            }
            let f5 = r.functions.values_mut().find(|f| f.name == "f5").unwrap();
            f5.self_probe = probe * f5.self_total;
            f5.self_mean *= scale;
            f5.self_total *= scale;
            r.total_self = r.functions.values().map(|f| f.self_total).sum();
        }
        rs
    }

    #[test]
    fn a_time_mostly_taken_out_as_probe_cost_gets_the_threshold_the_calibration_allows() {
        let s = GateSettings {
            metrics: vec![Metric::MEAN_SELF],
            ..settings()
        };
        let base = baseline_of(&with_probe(10, 1, 1.0, 10.0));
        assert_eq!(base.functions[5].self_probe_ns.len(), 10);
        // 10× its own time taken out, the calibration known to ±5%: ±50%. +30% is the calibration's.
        let head = with_probe(10, 300, 1.3, 10.0);
        let c = compare(&base, &head, &s, "bench", &Machine::default());
        let f5 = verdict_of(&c, "f5");
        assert!(c.passed(), "{f5:#?}");
        assert!((f5.figures.threshold - 0.5).abs() < 0.05, "{f5:#?}");
        assert!(
            f5.notes
                .iter()
                .any(|n| n.starts_with("mean self threshold 5") && n.contains("±5%")),
            "{:?}",
            f5.notes
        );
        // Three times slower is not.
        let head = with_probe(10, 300, 3.0, 10.0);
        let c = compare(&base, &head, &s, "bench", &Machine::default());
        assert_eq!(verdict_of(&c, "f5").verdict, Verdict::Regressed);
        // The others, a tenth taken out (±0.5%), keep the 5% threshold.
        assert!(c
            .functions
            .iter()
            .filter(|f| f.name != "f5")
            .all(|f| (f.figures.threshold - 0.05).abs() < 1e-12));
        // 40× taken out: the calibration alone could double it; not gated, and said.
        let base = baseline_of(&with_probe(10, 1, 1.0, 40.0));
        let head = with_probe(10, 300, 3.0, 40.0);
        let c = compare(&base, &head, &s, "bench", &Machine::default());
        let f5 = verdict_of(&c, "f5");
        assert_ne!(f5.verdict, Verdict::Regressed, "{f5:#?}");
        assert!(
            f5.notes
                .iter()
                .any(|n| n.starts_with("mean self not gated:")),
            "{:?}",
            f5.notes
        );
        // Without the figure (a baseline written before it was kept), nothing changes.
        let mut old = baseline_of(&with_probe(10, 1, 1.0, 40.0));
        for f in &mut old.functions {
            f.probe_ns.clear();
            f.self_probe_ns.clear();
        }
        let mut head = with_probe(10, 300, 3.0, 40.0);
        for r in &mut head {
            for f in r.functions.values_mut() {
                (f.probe, f.self_probe) = (0.0, 0.0);
            }
        }
        let c = compare(&old, &head, &s, "bench", &Machine::default());
        assert_eq!(verdict_of(&c, "f5").verdict, Verdict::Regressed);
    }

    #[test]
    fn a_total_the_compensation_leaves_nothing_of_is_gated_as_measured_so_a_change_in_calls_shows()
    {
        let s = GateSettings {
            metrics: vec![Metric::TOTAL_SELF],
            ..settings()
        };
        // 40× f5's own time taken out: its compensated total says nothing (±200%).
        let base = baseline_of(&with_probe(10, 1, 1.0, 40.0));
        let head_with = |calls: f64, probe: f64| {
            let mut h = with_probe(10, 300, 1.0, 40.0 * probe);
            for r in &mut h {
                let f5 = r.functions.values_mut().find(|f| f.name == "f5").unwrap();
                f5.calls = (f5.calls as f64 * calls) as u64;
                f5.self_total *= calls;
                f5.self_probe *= calls;
            }
            h
        };
        // Called 4,000 times as often: regressed, about ×4,000.
        let c = compare(
            &base,
            &head_with(4000.0, 1.0),
            &s,
            "bench",
            &Machine::default(),
        );
        let f5 = verdict_of(&c, "f5");
        assert_eq!(f5.verdict, Verdict::Regressed, "{f5:#?}");
        assert!(f5.figures.ratio.is_some_and(|r| r > 3000.0), "{f5:#?}");
        assert!(
            (f5.figures.threshold - RAW_TOTAL_THRESHOLD).abs() < 1e-12,
            "{f5:#?}"
        );
        assert!(
            f5.notes.iter().any(|n| n
                .starts_with("total self gated on the time as measured, probe cost in, at 100%")),
            "{:?}",
            f5.notes
        );
        // 1.5 times the calls and the probe 15% dearer: as measured ×1.7, under the doubling; no alarm.
        let c = compare(
            &base,
            &head_with(1.5, 1.15),
            &s,
            "bench",
            &Machine::default(),
        );
        let f5 = verdict_of(&c, "f5");
        assert_ne!(f5.verdict, Verdict::Regressed, "{f5:#?}");
        assert!(
            (f5.figures.threshold - RAW_TOTAL_THRESHOLD).abs() < 1e-12,
            "{f5:#?}"
        );
        // A mean per call that says nothing is still not gated.
        let mean = GateSettings {
            metrics: vec![Metric::MEAN_SELF],
            ..settings()
        };
        let c = compare(
            &base,
            &head_with(4000.0, 1.0),
            &mean,
            "bench",
            &Machine::default(),
        );
        assert_ne!(verdict_of(&c, "f5").verdict, Verdict::Regressed);
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
        assert!((1.15..1.35).contains(&f3.figures.ratio.unwrap()), "{f3:?}");
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
            assert!(f.figures.cv.unwrap() > 0.0, "{f:?}");
            assert!(f.figures.smallest_detectable.unwrap() > 1.0, "{f:?}");
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

    /// Per-run figures of one function: its mean and quantiles of inclusive (= self) time, ns.
    #[derive(Clone, Copy)]
    struct Shape {
        mean: f64,
        p50: f64,
        p90: f64,
        p99: f64,
    }

    /// Runs of `n` functions of 2,000 calls each, function f at `(1000 + 250 f) * shape` with ±1% jitter
    /// per run, `change(f)` applied to the head's shape.
    fn shaped_runs(
        n: usize,
        runs: usize,
        seed: u64,
        change: impl Fn(usize, Shape) -> Shape,
    ) -> Vec<RunFigures> {
        (0..runs)
            .map(|i| {
                let mut r = RunFigures {
                    wall_ns: 1e9,
                    ..Default::default()
                };
                for f in 0..n {
                    let level = 1000.0 + 250.0 * f as f64;
                    let j = |k: u64| {
                        1.0 + ((((i as u64 + 1) * 7919 + (f as u64 + seed) * 104_729 + k * 31) % 21)
                            as f64
                            - 10.0)
                            / 1000.0
                    };
                    let s = change(
                        f,
                        Shape {
                            mean: level * j(1),
                            p50: 0.9 * level * j(2),
                            p90: 1.4 * level * j(3),
                            p99: 1.5 * level * j(4),
                        },
                    );
                    let calls = 2000;
                    r.functions.insert(
                        FuncKey {
                            module: "bench".into(),
                            symbol: format!("f{f}"),
                        },
                        FuncRun {
                            name: format!("f{f}"),
                            calls,
                            mean: s.mean,
                            p50: s.p50,
                            p90: s.p90,
                            p99: s.p99,
                            self_mean: s.mean,
                            self_p50: s.p50,
                            self_p90: s.p90,
                            self_p99: s.p99,
                            max: 3.0 * s.p99,
                            self_max: 3.0 * s.p99,
                            total: s.mean * calls as f64,
                            self_total: s.mean * calls as f64,
                            ..Default::default()
                        },
                    );
                }
                r.total_self = r.functions.values().map(|f| f.self_total).sum();
                r
            })
            .collect()
    }

    fn baseline_of(runs: &[RunFigures]) -> Baseline {
        Baseline::from_runs(
            vec!["./bench".into()],
            None,
            Machine::default(),
            GateOverrides::default(),
            &Selection::default(),
            runs,
        )
    }

    fn metric_verdict(f: &FunctionComparison, m: Metric) -> Option<Verdict> {
        f.metrics.iter().find(|x| x.metric == m).map(|x| x.verdict)
    }

    #[test]
    fn a_tail_only_change_fails_by_p99_and_leaves_the_mean_unchanged() {
        let base = baseline_of(&shaped_runs(6, 30, 1, |_, s| s));
        // f2: the tail twice as slow, the mean as it was.
        let head = shaped_runs(6, 10, 5, |f, s| {
            if f == 2 {
                Shape {
                    p99: s.p99 * 2.0,
                    ..s
                }
            } else {
                s
            }
        });
        let c = compare(&base, &head, &settings(), "bench", &Machine::default());
        let failing: Vec<&str> = c.failures().map(|f| f.name.as_str()).collect();
        assert_eq!(failing, ["f2"], "{:#?}", c.functions);
        let f2 = verdict_of(&c, "f2");
        assert_eq!(f2.metric, Some(Metric::P99_INCLUSIVE));
        assert_eq!(
            metric_verdict(f2, Metric::P99_INCLUSIVE),
            Some(Verdict::Regressed)
        );
        assert_eq!(
            metric_verdict(f2, Metric::MEAN_SELF),
            Some(Verdict::Unchanged),
            "{f2:#?}"
        );
        assert!((1.8..2.2).contains(&f2.figures.ratio.unwrap()), "{f2:?}");
        // Its threshold is p99's (4× the quantile threshold), and the distribution is shown.
        assert!(
            (f2.figures.threshold - 0.40).abs() < 1e-12,
            "{}",
            f2.figures.threshold
        );
        let d = f2.distribution.as_ref().unwrap();
        assert_eq!(d.time, Some(TimeKind::Inclusive));
        assert!(d.head.p99 > 1.8 * d.base.p99, "{d:?}");
        // With the mean alone, the same runs pass.
        let mean_only = GateSettings {
            metrics: vec![Metric::MEAN_SELF],
            ..settings()
        };
        let c = compare(&base, &head, &mean_only, "bench", &Machine::default());
        assert!(c.passed(), "{:#?}", c.functions);
    }

    #[test]
    fn a_median_only_change_fails_by_p50_when_it_is_gated() {
        let base = baseline_of(&shaped_runs(6, 30, 1, |_, s| s));
        let head = shaped_runs(6, 10, 5, |f, s| {
            if f == 4 {
                Shape {
                    p50: s.p50 * 1.3,
                    ..s
                }
            } else {
                s
            }
        });
        let p50 = Metric {
            statistic: Statistic::P50,
            time: TimeKind::Inclusive,
        };
        let s = GateSettings {
            metrics: vec![Metric::MEAN_SELF, p50, Metric::P99_INCLUSIVE],
            ..settings()
        };
        let c = compare(&base, &head, &s, "bench", &Machine::default());
        let failing: Vec<&str> = c.failures().map(|f| f.name.as_str()).collect();
        assert_eq!(failing, ["f4"], "{:#?}", c.functions);
        let f4 = verdict_of(&c, "f4");
        assert_eq!(f4.metric, Some(p50));
        assert_eq!(
            metric_verdict(f4, Metric::MEAN_SELF),
            Some(Verdict::Unchanged)
        );
        assert_eq!(
            metric_verdict(f4, Metric::P99_INCLUSIVE),
            Some(Verdict::Unchanged)
        );
        // The defaults do not look at the median.
        let c = compare(&base, &head, &settings(), "bench", &Machine::default());
        assert!(c.passed(), "{:#?}", c.functions);
    }

    #[test]
    fn a_a_with_every_metric_passes_and_each_pair_is_decided() {
        let base = baseline_of(&shaped_runs(6, 30, 1, |_, s| s));
        let head = shaped_runs(6, 10, 9, |_, s| s);
        let all: Vec<Metric> = [
            Statistic::Mean,
            Statistic::P50,
            Statistic::P90,
            Statistic::P99,
        ]
        .into_iter()
        .flat_map(|statistic| {
            [TimeKind::SelfTime, TimeKind::Inclusive].map(|time| Metric { statistic, time })
        })
        .collect();
        let s = GateSettings {
            metrics: all.clone(),
            ..settings()
        };
        let c = compare(&base, &head, &s, "bench", &Machine::default());
        assert!(c.passed(), "{:#?}", c.functions);
        for f in &c.functions {
            assert_eq!(f.metrics.len(), all.len(), "{f:#?}");
            assert!(f.metrics.iter().all(|m| m.figures.q_value.is_some()));
        }
        assert_eq!(c.outcome(), "pass");
    }

    #[test]
    fn a_quantile_of_too_few_calls_or_missing_from_the_baseline_is_not_gated_and_says_why() {
        let mut base_runs = shaped_runs(6, 30, 1, |_, s| s);
        let mut head = shaped_runs(6, 10, 5, |_, s| s);
        for r in base_runs.iter_mut().chain(head.iter_mut()) {
            let f0 = r.functions.values_mut().next().unwrap();
            f0.calls = 100;
        }
        // A baseline from before self-time tails were kept.
        let mut base = baseline_of(&base_runs);
        for f in &mut base.functions {
            f.self_p99_ns.clear();
        }
        let text = base.to_toml().unwrap();
        let base = Baseline::parse(&text).unwrap();
        let p99_self = Metric {
            statistic: Statistic::P99,
            time: TimeKind::SelfTime,
        };
        let s = GateSettings {
            metrics: vec![Metric::MEAN_SELF, Metric::P99_INCLUSIVE, p99_self],
            ..settings()
        };
        let c = compare(&base, &head, &s, "bench", &Machine::default());
        let f0 = verdict_of(&c, "f0");
        assert_eq!(f0.metrics.len(), 1, "{f0:#?}");
        assert!(
            f0.notes.iter().any(|n| n.contains("100 calls per run")),
            "{:?}",
            f0.notes
        );
        let f1 = verdict_of(&c, "f1");
        assert_eq!(f1.metrics.len(), 2, "{f1:#?}");
        assert!(
            f1.notes.iter().any(|n| n.contains("older perfgate")),
            "{:?}",
            f1.notes
        );
    }

    #[test]
    fn a_function_can_have_its_own_metrics_and_quantile_threshold() {
        let base_runs = shaped_runs(6, 30, 1, |_, s| s);
        let head = shaped_runs(6, 10, 5, |f, s| {
            if f == 1 {
                Shape {
                    p99: s.p99 * 1.6,
                    ..s
                }
            } else {
                s
            }
        });
        let mut base = baseline_of(&base_runs);
        let s = settings();
        assert_eq!(
            compare(&base, &head, &s, "bench", &Machine::default())
                .failures()
                .count(),
            1
        );
        let f1 = base.functions.iter_mut().find(|f| f.name == "f1").unwrap();
        f1.quantile_threshold = Some(0.5);
        let c = compare(&base, &head, &s, "bench", &Machine::default());
        assert!(c.passed(), "{:#?}", c.functions);
        let f1 = base.functions.iter_mut().find(|f| f.name == "f1").unwrap();
        f1.quantile_threshold = None;
        f1.metrics = Some(vec![Metric::MEAN_SELF]);
        let c = compare(&base, &head, &s, "bench", &Machine::default());
        assert!(c.passed(), "{:#?}", c.functions);
        assert_eq!(verdict_of(&c, "f1").metrics.len(), 1);
    }

    #[test]
    fn a_confirmed_pair_stays_confirmed_at_the_next_look() {
        let base = baseline_of(&shaped_runs(6, 30, 1, |_, s| s));
        let tail = |f: usize, s: Shape| {
            if f == 2 {
                Shape {
                    p99: s.p99 * 2.0,
                    ..s
                }
            } else {
                s
            }
        };
        let first = compare(
            &base,
            &shaped_runs(6, 5, 5, tail),
            &settings(),
            "bench",
            &Machine::default(),
        );
        assert_eq!(verdict_of(&first, "f2").verdict, Verdict::Regressed);
        // The next look's runs no longer show it: the pair's verdict is final.
        let second = compare_with(
            &Base::from_baseline(&base),
            &shaped_runs(6, 10, 7, |_, s| s),
            &settings(),
            "bench",
            &Machine::default(),
            Some(&first),
        );
        let f2 = verdict_of(&second, "f2");
        assert_eq!(f2.verdict, Verdict::Regressed, "{f2:#?}");
        assert_eq!(f2.metric, Some(Metric::P99_INCLUSIVE));
    }
}
