//! The gate's false-alarm rate (A/A checks) and its power against injected 5%, 10% and 20% slowdowns of
//! one function of the gatebench fixture, measured by real checks on this machine, each run exactly as
//! `perfgate check` runs it (`session::runs::check`).
use std::ffi::OsString;
use std::time::Instant;

use anyhow::{bail, Result};

use super::{argv, fixture, median, percent, run_options, table};
use crate::cli::BenchArgs;
use crate::cmd::status;
use crate::files::PrivateDir;
use crate::gate::baseline::{validate_settings, Baseline, GateOverrides};
use crate::gate::compare::compare;
use crate::gate::model::{Comparison, GateSettings, Verdict};
use crate::gate::rule;
use crate::plan::Selection;
use crate::profile::Machine;
use crate::report::units::{change, duration};
use crate::session::runs::{self, Quiet};
use crate::session::{RunOptions, Target};

const SLOW_VAR: &str = "GATEBENCH_SLOW";
const SLOW_FUNCTION: &str = "hash_block";

/// Sets or clears the slowdown knob for the benchmarks perfgate spawns (they inherit its environment), and
/// restores the original value on drop.
struct SlowKnob(Option<OsString>);

impl SlowKnob {
    fn new() -> SlowKnob {
        SlowKnob(std::env::var_os(SLOW_VAR))
    }

    /// `None`: no slowdown. The benchmark part runs on a single thread, so changing the environment is sound.
    fn set(&self, percent: Option<u32>) {
        match percent {
            Some(p) => std::env::set_var(SLOW_VAR, format!("{SLOW_FUNCTION}:{p}")),
            None => std::env::remove_var(SLOW_VAR),
        }
    }
}

impl Drop for SlowKnob {
    fn drop(&mut self) {
        match &self.0 {
            Some(v) => std::env::set_var(SLOW_VAR, v),
            None => std::env::remove_var(SLOW_VAR),
        }
    }
}

/// How one comparison judged the slowed function and everything else.
#[derive(Debug, Clone, Copy, Default)]
struct Judged {
    caught: bool,
    false_alarm: bool,
}

/// Whether the slowed function regressed, and whether anything else failed; the names of the others.
fn judge(c: &Comparison, slowed: bool) -> (Judged, Vec<String>) {
    let caught = slowed
        && c.functions
            .iter()
            .any(|f| f.name == SLOW_FUNCTION && f.verdict == Verdict::Regressed);
    let wrongly_flagged: Vec<String> = c
        .failures()
        .filter(|f| !(slowed && f.name == SLOW_FUNCTION))
        .map(|f| format!("{} ({})", f.name, f.verdict.label()))
        .collect();
    let judged = Judged {
        caught,
        false_alarm: !wrongly_flagged.is_empty(),
    };
    (judged, wrongly_flagged)
}

/// What one check found.
struct CheckOutcome {
    absolute: Judged,
    wrongly_flagged: Vec<String>,
    inconclusive: bool,
    runs: usize,
    ratio: Option<f64>,
    /// The same head runs judged with `--relative` (head divided by the machine's speed factor).
    relative: Judged,
    /// Highest 1-minute load average seen at the start or end of the check.
    load: f64,
}

/// The experiment: one baseline, then checks per scenario.
struct Experiment<'a> {
    target: &'a Target,
    opts: RunOptions,
    base: Baseline,
    settings: GateSettings,
}

impl Experiment<'_> {
    fn check(&self, slowed: bool) -> Result<CheckOutcome> {
        let load_before = Machine::load_average().unwrap_or(f64::NAN);
        let r = runs::check(
            self.target,
            &self.opts,
            &self.base,
            &self.settings,
            "gatebench",
            &mut Quiet,
        )?;
        let c = &r.comparison;
        let (absolute, wrongly_flagged) = judge(c, slowed);
        let relative_settings = GateSettings {
            relative: true,
            ..self.settings.clone()
        };
        let rel = compare(
            &self.base,
            &r.head,
            &relative_settings,
            "gatebench",
            &Machine::current(),
        );
        Ok(CheckOutcome {
            absolute,
            wrongly_flagged,
            inconclusive: rule::undecided(c),
            runs: r.head.len(),
            ratio: c
                .functions
                .iter()
                .find(|f| f.name == SLOW_FUNCTION)
                .and_then(|f| f.ratio),
            relative: judge(&rel, slowed).0,
            load: load_before.max(Machine::load_average().unwrap_or(f64::NAN)),
        })
    }
}

/// Totals of one scenario's checks.
#[derive(Default)]
struct Tally {
    caught: usize,
    false_alarms: usize,
    inconclusive: usize,
    runs: usize,
    ratios: Vec<f64>,
    rel_caught: usize,
    rel_false: usize,
    load: f64,
}

impl Tally {
    fn add(&mut self, o: &CheckOutcome) {
        self.caught += usize::from(o.absolute.caught);
        self.false_alarms += usize::from(o.absolute.false_alarm);
        self.inconclusive += usize::from(o.inconclusive);
        self.runs += o.runs;
        self.ratios.extend(o.ratio);
        self.rel_caught += usize::from(o.relative.caught);
        self.rel_false += usize::from(o.relative.false_alarm);
        self.load = self.load.max(o.load);
    }
}

pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    let started = Instant::now();
    let program = fixture(a, "gatebench")?;
    let stdout = scratch.file("gatebench.out");
    let sel = Selection::default();
    let target = Target::new(&argv(&program, &[]), &sel)?;
    if !target
        .plan
        .functions
        .iter()
        .any(|f| f.name == SLOW_FUNCTION)
    {
        bail!(
            "{SLOW_FUNCTION} is not in the probe plan of {}",
            program.display()
        );
    }
    let mut settings = GateSettings {
        runs: a.runs_per_check,
        ..GateSettings::default()
    };
    settings.max_runs = settings.max_runs.max(settings.runs);
    validate_settings(&settings)?;
    let opts = run_options(false, &stdout)?;
    let knob = SlowKnob::new();

    knob.set(None);
    status(&format!(
        "bench gate: recording a baseline of {} runs of gatebench (no slowdown)",
        a.runs_per_check
    ));
    let mut base_runs = Vec::new();
    let n = a.runs_per_check;
    runs::run_batch(&target, &opts, n, n, &mut base_runs, &mut Quiet)?;
    let base = Baseline::from_runs(
        target.command(),
        target.plan.build_id.clone(),
        Machine::current(),
        GateOverrides::default(),
        &sel,
        &base_runs,
    );
    let experiment = Experiment {
        target: &target,
        opts,
        base,
        settings,
    };

    let scenarios: [(String, Option<u32>); 4] = [
        ("A/A (no slowdown)".into(), None),
        (format!("{SLOW_FUNCTION} +5%"), Some(5)),
        (format!("{SLOW_FUNCTION} +10%"), Some(10)),
        (format!("{SLOW_FUNCTION} +20%"), Some(20)),
    ];
    let mut tallies = Vec::new();
    for (label, pct) in &scenarios {
        knob.set(*pct);
        let mut t = Tally {
            load: f64::NAN,
            ..Tally::default()
        };
        for i in 1..=a.checks {
            let o = experiment.check(pct.is_some())?;
            t.add(&o);
            status(&check_line(a, label, *pct, i, &o, started));
        }
        tallies.push(t);
    }
    drop(knob);
    Ok(render(
        a,
        &experiment.settings,
        &scenarios,
        &tallies,
        started,
    ))
}

/// The status line after one check.
fn check_line(
    a: &BenchArgs,
    label: &str,
    pct: Option<u32>,
    i: usize,
    o: &CheckOutcome,
    started: Instant,
) -> String {
    let what = match (pct.is_some(), o.absolute.caught) {
        (false, _) => String::new(),
        (true, true) => format!("{SLOW_FUNCTION} regressed, "),
        (true, false) => format!("{SLOW_FUNCTION} NOT caught, "),
    };
    let flagged = if o.wrongly_flagged.is_empty() {
        "no false alarm".to_string()
    } else {
        format!("FALSE ALARM: {}", o.wrongly_flagged.join(", "))
    };
    format!(
        "bench gate: {label}: check {i}/{}: {what}{flagged}, {} runs, {SLOW_FUNCTION} {}{}, load {:.2} [{} elapsed]",
        a.checks,
        o.runs,
        o.ratio.map_or("-".into(), change),
        if o.inconclusive { ", still inconclusive at the cap" } else { "" },
        o.load,
        duration(started.elapsed().as_nanos() as f64)
    )
}

/// The printed tables and the aim line.
fn render(
    a: &BenchArgs,
    settings: &GateSettings,
    scenarios: &[(String, Option<u32>)],
    tallies: &[Tally],
    started: Instant,
) -> String {
    let checks = a.checks;
    let mut rows = Vec::new();
    let mut rel_rows = Vec::new();
    for ((label, pct), t) in scenarios.iter().zip(tallies) {
        let caught = |n: usize| {
            if pct.is_some() {
                percent(n, checks)
            } else {
                "-".into()
            }
        };
        rows.push(vec![
            label.clone(),
            checks.to_string(),
            caught(t.caught),
            percent(t.false_alarms, checks),
            percent(t.inconclusive, checks),
            format!("{:.1}", t.runs as f64 / checks as f64),
            change(median(&t.ratios)),
            format!("{:.2}", t.load),
        ]);
        rel_rows.push(vec![
            label.clone(),
            caught(t.rel_caught),
            percent(t.rel_false, checks),
        ]);
    }
    let mut s = format!(
        "GATE: gatebench, baseline of {} runs without slowdown; each check starts with {} head runs, adds {} while \
         undecided, up to {} (as `perfgate check`); default settings: alpha {}, threshold {:.0}%, metric self time\n",
        a.runs_per_check,
        settings.runs,
        rule::STEP,
        settings.max_runs,
        settings.alpha,
        settings.threshold * 100.0
    );
    s.push_str(&table(
        &[
            "scenario",
            "checks",
            "caught (hash_block regressed)",
            "false alarms (other functions or A/A failures)",
            "inconclusive at the cap",
            "mean runs needed",
            "hash_block change (median estimate)",
            "1-min load (max)",
        ],
        rows,
        1,
    ));
    s.push_str(&format!(
        "the same head runs judged with --relative (head divided by the machine's speed factor, the median change over all functions; survives a uniformly slower machine, \
         e.g. other work on these {} cores):\n",
        Machine::current().cores
    ));
    s.push_str(&table(
        &[
            "scenario",
            "caught (hash_block regressed)",
            "false alarms (other functions or A/A failures)",
        ],
        rel_rows,
        1,
    ));
    s.push_str(&aim_line(checks, scenarios, tallies));
    s.push_str(&format!(
        "gate bench took {}\n",
        duration(started.elapsed().as_nanos() as f64)
    ));
    s
}

/// The aim and whether this run met it.
fn aim_line(checks: usize, scenarios: &[(String, Option<u32>)], tallies: &[Tally]) -> String {
    let aa_false = tallies.first().map_or(0, |t| t.false_alarms);
    let caught10 = scenarios
        .iter()
        .position(|(_, p)| *p == Some(10))
        .map_or(0, |i| tallies[i].caught);
    let aim_met = aa_false == 0 && caught10 as f64 >= 0.95 * checks as f64;
    format!(
        "aim: 0 false alarms in {checks} A/A checks and ≥ 95% detection of a 10% slowdown: {aa_false} A/A false alarms in {checks}, \
         {} of 10% detected ({})\n",
        percent(caught10, checks),
        if aim_met { "met" } else { "NOT met" }
    )
}
