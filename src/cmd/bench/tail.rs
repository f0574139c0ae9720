//! The quantile metrics on the tailbench fixture: how precise a run's quantile read from the kernel's
//! histogram is at each resolution (against the exact quantile of every call, recorded in trace mode),
//! what each resolution costs in kernel memory, and the gate's false alarms and detection with the default
//! metrics (mean self time, p99 of inclusive time) and with the median added, against a tail-only and a
//! median-only change of one function at two sizes each. Every check runs exactly as `perfgate check`
//! runs it (`session::runs::check`, with the probe cost calibrated once).
//!
//! The knobs keep the changed function's total work exactly (tailbench.c): the tail knob makes 1.5% of
//! its calls slower and all the others a little faster, the median knob moves its middle half and pays for
//! it with its fastest quarter. So the mean verdict should stay unchanged while p99 (or p50) moves.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Instant;

use anyhow::{bail, Result};

use super::{argv, fixture, median, percent, quiet_baseline, run_options, table};
use crate::bpf::kernel::stats_bytes_at;
use crate::cli::BenchArgs;
use crate::cmd::status;
use crate::files::PrivateDir;
use crate::gate::baseline::{validate_settings, Baseline};
use crate::gate::model::{Comparison, GateSettings, Metric, Statistic, TimeKind, Verdict};
use crate::gate::sequential::DEFAULT_BASE_RUNS;
use crate::plan::Selection;
use crate::profile::calls::reconstruct;
use crate::profile::file::Event;
use crate::profile::hist::{buckets_at, Histogram, SUB_BITS};
use crate::profile::{Machine, Profile};
use crate::report::units::{change, duration};
use crate::session::runs::{self, Quiet};
use crate::session::{self, RunOptions, Target};

const TAIL_VAR: &str = "TAILBENCH_TAIL";
const MEDIAN_VAR: &str = "TAILBENCH_MEDIAN";
/// The function the knobs change.
const TARGET: &str = "lookup";
/// tailbench's six measured functions (every other traced function is main or run_round).
const MEASURED: [&str; 6] = ["lookup", "decode", "insert", "reduce", "scan", "encode"];
/// Resolutions whose error is measured.
const RESOLUTIONS: [u32; 4] = [3, 4, 5, 6];
/// Quantiles whose error is measured.
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
/// Traced runs per shape for the resolution part.
const TRACE_RUNS: usize = 2;

/// Sets the fixture's knobs for the benchmarks perfgate spawns (they inherit its environment) and
/// restores them on drop.
struct Knobs([(&'static str, Option<OsString>); 2]);

impl Knobs {
    fn new() -> Knobs {
        Knobs([TAIL_VAR, MEDIAN_VAR].map(|v| (v, std::env::var_os(v))))
    }

    /// The benchmark part runs on a single thread, so changing the environment is sound.
    fn set(&self, tail: Option<&str>, median: Option<&str>) {
        for (var, value) in [(TAIL_VAR, tail), (MEDIAN_VAR, median)] {
            match value {
                Some(v) => std::env::set_var(var, v),
                None => std::env::remove_var(var),
            }
        }
    }
}

impl Drop for Knobs {
    fn drop(&mut self) {
        for (var, value) in &self.0 {
            match value {
                Some(v) => std::env::set_var(var, v),
                None => std::env::remove_var(var),
            }
        }
    }
}

pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    let started = Instant::now();
    let program = fixture(a, "tailbench")?;
    let sel = Selection::default();
    let target = Target::new(&argv(&program, &[]), &sel)?;
    for f in MEASURED {
        if !target.plan.functions.iter().any(|p| p.name == f) {
            bail!("{f} is not in the probe plan of {}", program.display());
        }
    }
    let knobs = Knobs::new();
    let mut out = resolution(&target, scratch, &knobs)?;
    out.push('\n');
    out.push_str(&gate(a, &target, scratch, &knobs)?);
    drop(knobs);
    out.push_str(&format!(
        "tail bench took {}\n",
        duration(started.elapsed().as_nanos() as f64)
    ));
    Ok(out)
}

/// The exact type-7 quantile (linear between order statistics) of sorted values.
fn exact_quantile(sorted: &[u64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = q * (n - 1) as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    Some(sorted[lo] as f64 + (h - lo as f64) * (sorted[hi] as f64 - sorted[lo] as f64))
}

/// One quantile estimate's error: |estimate / exact - 1|, and where it happened.
struct QuantileError {
    error: f64,
    function: String,
    shape: &'static str,
}

/// The error of per-run quantiles read from histograms of each resolution against exact quantiles, and
/// whether the kernel's own histogram is the one rebuilt from the exact durations.
fn resolution(target: &Target, scratch: &PrivateDir, knobs: &Knobs) -> Result<String> {
    let shapes: [(&'static str, Option<&str>, Option<&str>); 3] = [
        ("as built", None, None),
        ("tail 1.5% ×10", Some("lookup:15:10"), None),
        ("median +25%", None, Some("lookup:25")),
    ];
    let mut errors = Errors::new();
    let mut kernel = (0usize, 0usize);
    let stdout = scratch.file("tailbench.out");
    let opts = run_options(true, &stdout)?;
    for (shape, tail, med) in shapes {
        knobs.set(tail, med);
        for i in 1..=TRACE_RUNS {
            status(&format!(
                "bench tail: tailbench {shape} in trace mode, run {i}/{TRACE_RUNS}"
            ));
            let mut events: Vec<Event> = Vec::new();
            let p = session::trace_with_events(target, &opts, &mut |e| {
                events.push(*e);
                Ok(())
            })?;
            if !p.exit.success() {
                bail!("tailbench failed under tracing ({})", p.exit);
            }
            if p.accounting.lost.events_dropped > 0 {
                bail!(
                    "{} events were lost: the exact quantiles would be wrong",
                    p.accounting.lost.events_dropped
                );
            }
            tally_run(&p, events, shape, &mut errors, &mut kernel)?;
        }
    }
    knobs.set(None, None);
    let rows = resolution_rows(&errors);
    let (kernel_same, kernel_compared) = kernel;
    let samples = errors.get(&(SUB_BITS, 0)).map_or(0, Vec::len);
    let mut s = format!(
        "QUANTILE RESOLUTION: tailbench, {TRACE_RUNS} traced runs of each of 3 shapes, every call recorded; per run and \
         function ({samples} samples per cell) the quantile read from a histogram of each resolution (interpolated in \
         its bucket, clamped to the exact min and max, as the gate reads it) against the exact quantile of the \
         run's calls (inclusive time; the six functions are leaves, so self time is the same)\n"
    );
    s.push_str(&table(
        &[
            "resolution",
            "buckets per power of two",
            "buckets",
            "kernel memory per (thread, function)",
            "p50 error (median)",
            "p50 error (worst)",
            "p90 error (median)",
            "p90 error (worst)",
            "p99 error (median)",
            "p99 error (worst)",
        ],
        rows,
        1,
    ));
    s.push_str(&format!(
        "▶ = the resolution the BPF program uses ({SUB_BITS} sub-bits); its histogram equals the one rebuilt \
         from the exact durations for {kernel_same} of {kernel_compared} (run, function) pairs. The stats map \
         holds one entry per (thread, function) that ran, allocated on first call (BPF_F_NO_PREALLOC); its cap \
         is functions × 16 threads, at least 65,536 entries (262,144 when following processes), at most \
         4,194,304 (src/bpf/mod.rs).\n"
    ));
    Ok(s)
}

/// Per (resolution, index in [`QUANTILES`]), the errors of the runs tallied so far.
type Errors = BTreeMap<(u32, usize), Vec<QuantileError>>;

/// Tallies one traced run of shape `shape` (its profile `p` and every event): per measured function,
/// the error of each resolution's quantiles against the exact ones of its calls, and in `kernel_counts`
/// (same, compared) whether the kernel's histogram is the one rebuilt at its resolution.
fn tally_run(
    p: &Profile,
    events: Vec<Event>,
    shape: &'static str,
    errors: &mut Errors,
    kernel_counts: &mut (usize, usize),
) -> Result<()> {
    let calls = reconstruct(events.into_iter().map(Ok), None)?;
    let mut durations: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for c in calls.calls.iter().filter(|c| !c.unfinished) {
        durations.entry(c.func).or_default().push(c.duration());
    }
    let kernel: BTreeMap<u32, Histogram> = p
        .per_function()
        .into_iter()
        .map(|s| (s.func, s.inclusive.hist))
        .collect();
    for (func, mut d) in durations {
        let Some(name) = p.function(func).map(|f| f.name.clone()) else {
            continue;
        };
        if !MEASURED.contains(&name.as_str()) {
            continue;
        }
        d.sort_unstable();
        let (min, max) = (d[0], d[d.len() - 1]);
        for k in RESOLUTIONS {
            let mut h = Histogram::at(k);
            for &v in &d {
                h.record(v);
            }
            if k == SUB_BITS {
                kernel_counts.1 += 1;
                kernel_counts.0 += usize::from(kernel.get(&func) == Some(&h));
            }
            for (qi, &q) in QUANTILES.iter().enumerate() {
                let (Some(exact), Some(est)) = (exact_quantile(&d, q), h.quantile(q, min, max))
                else {
                    continue;
                };
                if exact > 0.0 {
                    errors.entry((k, qi)).or_default().push(QuantileError {
                        error: (est / exact - 1.0).abs(),
                        function: name.clone(),
                        shape,
                    });
                }
            }
        }
    }
    Ok(())
}

/// One row per resolution: its bucket width, buckets and kernel memory, then per quantile the median
/// and the worst error (with where it happened).
fn resolution_rows(errors: &Errors) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for k in RESOLUTIONS {
        let mut row = vec![
            format!("{}{k} sub-bits", if k == SUB_BITS { "▶ " } else { "" }),
            format!("{} ({:.2}% wide)", 1u32 << k, 100.0 / f64::from(1u32 << k)),
            buckets_at(k).to_string(),
            format!("{:.1} KiB", stats_bytes_at(k) as f64 / 1024.0),
        ];
        for qi in 0..QUANTILES.len() {
            let e = errors.get(&(k, qi)).map_or(&[][..], Vec::as_slice);
            let v: Vec<f64> = e.iter().map(|x| x.error).collect();
            let worst = e
                .iter()
                .max_by(|a, b| a.error.total_cmp(&b.error))
                .map_or("-".to_string(), |w| {
                    format!("{:.2}% ({}, {})", w.error * 100.0, w.function, w.shape)
                });
            row.push(format!("{:.2}%", median(&v) * 100.0));
            row.push(worst);
        }
        rows.push(row);
    }
    rows
}

/// A scenario of the gate part: a knob setting, the metrics checked, what should be caught.
struct Scenario {
    label: String,
    tail: Option<&'static str>,
    median: Option<&'static str>,
    metrics: Vec<Metric>,
    /// The metric that should catch the change (`None`: A/A).
    expect: Option<Metric>,
}

/// What one check found.
#[derive(Default)]
struct Outcome {
    /// The target regressed, by the expected metric.
    caught: bool,
    /// Something else failed (or anything, in A/A).
    false_alarm: Vec<String>,
    /// The target's mean self time verdict.
    mean_verdict: Option<Verdict>,
    /// Some function was still undecided when the check ended (at the cap, or stopped by a confirmed regression).
    inconclusive: bool,
    runs: usize,
    /// The expected metric's change of the target.
    change: Option<f64>,
    load: f64,
}

const P50_INCLUSIVE: Metric = Metric {
    statistic: Statistic::P50,
    time: TimeKind::Inclusive,
};

fn judge(c: &Comparison, s: &Scenario) -> Outcome {
    let target = c.functions.iter().find(|f| f.name == TARGET);
    let metric_of = |m: Metric| target.and_then(|f| f.metrics.iter().find(|x| x.metric == m));
    let caught = s
        .expect
        .and_then(metric_of)
        .is_some_and(|m| m.verdict == Verdict::Regressed);
    let mut false_alarm = Vec::new();
    for f in c.failures() {
        for m in f.metrics.iter().filter(|m| m.verdict == Verdict::Regressed) {
            if !(f.name == TARGET && Some(m.metric) == s.expect) {
                false_alarm.push(format!("{} {}", f.name, m.metric.short()));
            }
        }
        if f.verdict == Verdict::CallsChanged {
            false_alarm.push(format!("{} calls", f.name));
        }
    }
    Outcome {
        caught,
        false_alarm,
        mean_verdict: metric_of(Metric::MEAN_SELF).map(|m| m.verdict),
        inconclusive: crate::gate::rule::undecided(c),
        runs: c.head_runs,
        // A/A: how far the tail drifted with the machine alone, the largest p99 change of any function
        // (what the quantile threshold must stay above).
        change: match s.expect {
            Some(m) => metric_of(m).and_then(|m| m.figures.ratio),
            None => c
                .functions
                .iter()
                .filter_map(|f| {
                    let m = f
                        .metrics
                        .iter()
                        .find(|x| x.metric == Metric::P99_INCLUSIVE)?;
                    m.figures.ratio
                })
                .max_by(f64::total_cmp),
        },
        load: f64::NAN,
    }
}

/// The scenarios of the gate part: A/A and the tail-only changes with the default metrics, then A/A and
/// the median-only changes with p50 gated too.
fn scenarios() -> Vec<Scenario> {
    let defaults = Metric::defaults();
    let with_median = vec![Metric::MEAN_SELF, P50_INCLUSIVE, Metric::P99_INCLUSIVE];
    vec![
        Scenario {
            label: "A/A".into(),
            tail: None,
            median: None,
            metrics: defaults.clone(),
            expect: None,
        },
        Scenario {
            label: format!("{TARGET}: 1.5% of calls 5× (tail only)"),
            tail: Some("lookup:15:5"),
            median: None,
            metrics: defaults.clone(),
            expect: Some(Metric::P99_INCLUSIVE),
        },
        Scenario {
            label: format!("{TARGET}: 1.5% of calls 10× (tail only)"),
            tail: Some("lookup:15:10"),
            median: None,
            metrics: defaults.clone(),
            expect: Some(Metric::P99_INCLUSIVE),
        },
        Scenario {
            label: "A/A, + p50".into(),
            tail: None,
            median: None,
            metrics: with_median.clone(),
            expect: None,
        },
        Scenario {
            label: format!("{TARGET}: median +15% (median only), + p50"),
            tail: None,
            median: Some("lookup:15"),
            metrics: with_median.clone(),
            expect: Some(P50_INCLUSIVE),
        },
        Scenario {
            label: format!("{TARGET}: median +25% (median only), + p50"),
            tail: None,
            median: Some("lookup:25"),
            metrics: with_median,
            expect: Some(P50_INCLUSIVE),
        },
    ]
}

/// `a.checks` checks of scenario `s` (its knobs set) against `base`, each said in a status line.
fn check_scenario(
    a: &BenchArgs,
    target: &Target,
    opts: &RunOptions,
    base: &Baseline,
    settings: &GateSettings,
    s: &Scenario,
    started: Instant,
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for i in 1..=a.checks {
        let load_before = Machine::load_average().unwrap_or(f64::NAN);
        let r = runs::check(target, opts, base, settings, "tailbench", &mut Quiet)?;
        let mut o = judge(&r.comparison, s);
        o.load = load_before.max(Machine::load_average().unwrap_or(f64::NAN));
        status(&format!(
            "bench tail: {}: check {i}/{}: {}{}, mean self {}, {} runs{}, load {:.2} [{} elapsed]",
            s.label,
            a.checks,
            match (s.expect, o.caught) {
                (None, _) => String::new(),
                (Some(m), true) => format!("{TARGET} {} regressed, ", m.short()),
                (Some(m), false) => format!("{TARGET} {} NOT caught, ", m.short()),
            },
            if o.false_alarm.is_empty() {
                "no false alarm".to_string()
            } else {
                format!("FALSE ALARM: {}", o.false_alarm.join(", "))
            },
            o.mean_verdict.map_or("-", |v| v.label()),
            o.runs,
            if o.inconclusive {
                ", functions left undecided"
            } else {
                ""
            },
            o.load,
            duration(started.elapsed().as_nanos() as f64)
        ));
        outcomes.push(o);
    }
    Ok(outcomes)
}

/// The row of one scenario: how often it was caught, false alarms, the mean's verdicts, undecided
/// checks, runs, the catching metric's change and the load.
fn scenario_row(s: &Scenario, outcomes: &[Outcome]) -> Vec<String> {
    let n = outcomes.len();
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let caught = count(&|o| o.caught);
    let false_alarms = count(&|o| !o.false_alarm.is_empty());
    let mean_unchanged = count(&|o| o.mean_verdict == Some(Verdict::Unchanged));
    let mean_failed = count(&|o| o.mean_verdict.is_some_and(|v| v.fails()));
    let changes: Vec<f64> = outcomes.iter().filter_map(|o| o.change).collect();
    let runs: usize = outcomes.iter().map(|o| o.runs).sum();
    let load = outcomes.iter().map(|o| o.load).fold(f64::NAN, f64::max);
    vec![
        s.label.clone(),
        s.metrics
            .iter()
            .map(Metric::short)
            .collect::<Vec<_>>()
            .join(", "),
        if s.expect.is_some() {
            percent(caught, n)
        } else {
            "-".into()
        },
        percent(false_alarms, n),
        format!(
            "{} unchanged, {} regressed",
            percent(mean_unchanged, n),
            mean_failed
        ),
        percent(count(&|o| o.inconclusive), n),
        format!("{:.1}", runs as f64 / n.max(1) as f64),
        change(median(&changes)),
        format!("{load:.2}"),
    ]
}

/// False alarms and detection, check by check: the baseline without a knob, then each scenario with its
/// knobs set (they are process state, set in this order).
fn gate(a: &BenchArgs, target: &Target, scratch: &PrivateDir, knobs: &Knobs) -> Result<String> {
    let started = Instant::now();
    let stdout = scratch.file("tailbench-gate.out");
    let mut opts = run_options(false, &stdout)?;
    // As `perfgate check` and `baseline` do: without it a parent's self time is mostly its children's
    // probe cost, which moves with the machine's load and not with the code.
    status("bench tail: calibrating the probe cost, as perfgate check does");
    opts.trace.probe_cost = Some(crate::session::calibrate::calibrate(&opts.trace)?);
    knobs.set(None, None);
    status(&format!(
        "bench tail: recording a baseline of {DEFAULT_BASE_RUNS} runs of tailbench (no knob)"
    ));
    let base = quiet_baseline(target, &opts, DEFAULT_BASE_RUNS, &Selection::default())?;
    let defaults = Metric::defaults();
    let scenarios = scenarios();
    let mut rows = Vec::new();
    let mut aa_default_false = 0;
    let mut tail10_caught = 0;
    for s in &scenarios {
        knobs.set(s.tail, s.median);
        let settings = GateSettings {
            metrics: s.metrics.clone(),
            ..GateSettings::default()
        };
        validate_settings(&settings)?;
        let outcomes = check_scenario(a, target, &opts, &base, &settings, s, started)?;
        let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        if s.expect.is_none() && s.metrics == defaults {
            aa_default_false = count(&|o| !o.false_alarm.is_empty());
        }
        if s.tail == Some("lookup:15:10") {
            tail10_caught = count(&|o| o.caught);
        }
        rows.push(scenario_row(s, &outcomes));
    }
    knobs.set(None, None);
    Ok(gate_report(rows, aa_default_false, tail10_caught, a.checks))
}

/// The gate part's text: the settings, the table of `rows`, and whether the aim was met (no A/A false
/// alarm with the default metrics, the tail-only ×10 change caught in 95% of `checks`).
fn gate_report(
    rows: Vec<Vec<String>>,
    aa_default_false: usize,
    tail10_caught: usize,
    checks: usize,
) -> String {
    let settings = GateSettings {
        metrics: vec![Metric::MEAN_SELF, P50_INCLUSIVE, Metric::P99_INCLUSIVE],
        ..GateSettings::default()
    };
    let mut s = format!(
        "TAIL GATE: tailbench, baseline of {DEFAULT_BASE_RUNS} runs without a knob; each check starts with {} head runs \
         and looks again at the sequential rule's looks up to {} (as `perfgate check`); {}, alpha {} over every \
         (function, metric) pair; caught = {TARGET} regressed by the metric named (p99 incl for the tail knob, p50 \
         incl for the median knob)\n",
        settings.runs,
        settings.max_runs,
        settings.thresholds_label(),
        settings.alpha
    );
    s.push_str(&table(
        &[
            "scenario",
            "metrics",
            "caught and attributed",
            "false alarms (any other function or metric)",
            &format!("{TARGET} mean self verdict"),
            "ended with functions undecided",
            "mean runs",
            "change of the catching metric (A/A: largest p99 incl), median",
            "1-min load (max)",
        ],
        rows,
        2,
    ));
    let met = aa_default_false == 0 && tail10_caught as f64 >= 0.95 * checks as f64;
    s.push_str(&format!(
        "aim: 0 false alarms in {checks} A/A checks with the default metrics and the tail-only change caught and \
         attributed (p99) in ≥ 95%: {aa_default_false} A/A false alarms, {} caught ({})\n",
        percent(tail10_caught, checks),
        if met { "met" } else { "NOT met" }
    ));
    s
}
