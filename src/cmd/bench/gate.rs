//! The gate's false-alarm rate (A/A checks) and its power against injected 5%, 10% and 20% slowdowns of
//! one function of the gatebench fixture, measured by real checks on this machine, per design: the first
//! rule (`gate::legacy`, 10 base runs, 5 more runs while undecided), the current default (per-run
//! normalisation and group-sequential looks against a 30-run baseline), and interleaved A/B — each on a
//! quiet machine and with a CPU hog busy on the other core for the whole condition (a loop the bench
//! starts itself, stopped when the condition ends). The stored baselines are recorded on the quiet
//! machine, so under the hog they are "a baseline recorded under different load".
//!
//! Every check runs exactly as `perfgate check` (or `check --against`) runs it: `session::runs`.
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::{argv, fixture, median, percent, run_options, table};
use crate::cli::BenchArgs;
use crate::cmd::status;
use crate::files::PrivateDir;
use crate::gate::baseline::{validate_settings, Baseline, GateOverrides};
use crate::gate::model::{Comparison, GateSettings, Rule, Verdict};
use crate::gate::{rule, sequential};
use crate::plan::Selection;
use crate::profile::Machine;
use crate::report::units::{change, duration};
use crate::session::runs::{self, Quiet};
use crate::session::{RunOptions, Target};

const SLOW_VAR: &str = "GATEBENCH_SLOW";
const SLOW_FUNCTION: &str = "hash_block";
/// The longest a hog may run, whatever happens to the bench.
const HOG_LIMIT: Duration = Duration::from_secs(4 * 3600);

/// Sets or clears the slowdown knob for the benchmarks perfgate spawns (they inherit its environment), and
/// restores the original value on drop.
struct SlowKnob(Option<OsString>);

impl SlowKnob {
    fn new() -> SlowKnob {
        SlowKnob(std::env::var_os(SLOW_VAR))
    }

    /// `None`: no slowdown. The bench runs its checks on this one thread, so changing the environment is
    /// sound (the hog thread never reads it).
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

/// A thread that keeps one core busy until dropped (or [`HOG_LIMIT`]).
struct Hog {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hog {
    fn start() -> Hog {
        let running = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&running);
        let thread = std::thread::spawn(move || {
            let t = Instant::now();
            let mut x = 0u64;
            while flag.load(Ordering::Relaxed) && t.elapsed() < HOG_LIMIT {
                for i in 0..100_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
                }
            }
            std::hint::black_box(x);
        });
        Hog {
            running,
            thread: Some(thread),
        }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One way of deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Design {
    /// The first rule: 10 base runs, 10 head runs then 5 more while undecided, up to 30.
    Legacy,
    /// Per-run normalisation, looks at 5, 10, 15, 20, 30 head runs against 30 base runs.
    Default,
    /// Interleaved A/B pairs on this machine, looks at 5, 10, 15, 20, 30 pairs.
    Interleaved,
}

impl Design {
    const ALL: [Design; 3] = [Design::Legacy, Design::Default, Design::Interleaved];

    fn label(self) -> &'static str {
        match self {
            Design::Legacy => "first rule (10 base runs)",
            Design::Default => "default (normalised, sequential, 30 base runs)",
            Design::Interleaved => "interleaved A/B",
        }
    }

    fn settings(self) -> GateSettings {
        match self {
            Design::Legacy => GateSettings {
                rule: Rule::Legacy,
                runs: 10,
                max_runs: 30,
                ..GateSettings::default()
            },
            Design::Default | Design::Interleaved => GateSettings::default(),
        }
    }

    fn base_runs(self) -> usize {
        match self {
            Design::Legacy => 10,
            Design::Default | Design::Interleaved => sequential::DEFAULT_BASE_RUNS,
        }
    }
}

/// What one check found.
struct CheckOutcome {
    caught: bool,
    false_alarm: bool,
    wrongly_flagged: Vec<String>,
    inconclusive: bool,
    runs: usize,
    ratio: Option<f64>,
}

fn judge(c: &Comparison, slowed: bool, runs: usize) -> CheckOutcome {
    let caught = slowed
        && c.functions
            .iter()
            .any(|f| f.name == SLOW_FUNCTION && f.verdict == Verdict::Regressed);
    let wrongly_flagged: Vec<String> = c
        .failures()
        .filter(|f| !(slowed && f.name == SLOW_FUNCTION))
        .map(|f| format!("{} ({})", f.name, f.verdict.label()))
        .collect();
    CheckOutcome {
        caught,
        false_alarm: !wrongly_flagged.is_empty(),
        wrongly_flagged,
        inconclusive: rule::undecided(c),
        runs,
        ratio: c
            .functions
            .iter()
            .find(|f| f.name == SLOW_FUNCTION)
            .and_then(|f| f.figures.ratio),
    }
}

/// Totals of one (design, condition, scenario).
#[derive(Default)]
struct Tally {
    caught: usize,
    false_alarms: usize,
    inconclusive: usize,
    runs: usize,
    ratios: Vec<f64>,
}

impl Tally {
    fn add(&mut self, o: &CheckOutcome) {
        self.caught += usize::from(o.caught);
        self.false_alarms += usize::from(o.false_alarm);
        self.inconclusive += usize::from(o.inconclusive);
        self.runs += o.runs;
        self.ratios.extend(o.ratio);
    }
}

/// The fixture and how to run it.
struct Bench<'a> {
    a: &'a BenchArgs,
    program: std::path::PathBuf,
    target: Target,
    opts: RunOptions,
    started: Instant,
}

impl Bench<'_> {
    /// A baseline of the unslowed fixture, recorded now.
    fn baseline(&self, runs: usize) -> Result<Baseline> {
        let mut figures = Vec::new();
        runs::run_batch(
            &self.target,
            &self.opts,
            runs,
            runs,
            &mut figures,
            &mut Quiet,
        )?;
        Ok(Baseline::from_runs(
            self.target.command(),
            self.target.plan.build_id.clone(),
            Machine::current(),
            GateOverrides::default(),
            &Selection::default(),
            &figures,
        ))
    }

    /// One check of `design` with `pct` slowdown (None: A/A).
    fn check(
        &self,
        design: Design,
        base: Option<&Baseline>,
        knob: &SlowKnob,
        pct: Option<u32>,
    ) -> Result<CheckOutcome> {
        let settings = design.settings();
        match (design, base) {
            (Design::Interleaved, _) => {
                knob.set(None);
                let head_args: Vec<String> = pct
                    .map(|p| vec![format!("--slow={SLOW_FUNCTION}:{p}")])
                    .unwrap_or_default();
                let head_args: Vec<&str> = head_args.iter().map(String::as_str).collect();
                let head = Target::new(&argv(&self.program, &head_args), &Selection::default())?;
                let r = runs::interleaved(
                    &self.target,
                    &head,
                    &self.opts,
                    &settings,
                    "gatebench",
                    &mut Quiet,
                )?;
                Ok(judge(&r.comparison, pct.is_some(), r.head.len()))
            }
            (_, Some(base)) => {
                knob.set(pct);
                let r = runs::check(
                    &self.target,
                    &self.opts,
                    base,
                    &settings,
                    "gatebench",
                    &mut Quiet,
                );
                knob.set(None);
                let r = r?;
                Ok(judge(&r.comparison, pct.is_some(), r.head.len()))
            }
            (_, None) => bail!("internal: a stored-baseline design without a baseline"),
        }
    }
}

/// The rows of one condition (quiet or hog): per design and scenario.
struct Condition {
    label: &'static str,
    tallies: Vec<(Design, String, Option<u32>, Tally)>,
}

const SCENARIOS: [Option<u32>; 4] = [None, Some(5), Some(10), Some(20)];

fn scenario_label(pct: Option<u32>) -> String {
    match pct {
        None => "A/A (no slowdown)".into(),
        Some(p) => format!("{SLOW_FUNCTION} +{p}%"),
    }
}

pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    let started = Instant::now();
    let program = fixture(a, "gatebench")?;
    let stdout = scratch.file("gatebench.out");
    let target = Target::new(&argv(&program, &[]), &Selection::default())?;
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
    for d in Design::ALL {
        validate_settings(&d.settings())?;
    }
    let bench = Bench {
        a,
        program,
        target,
        opts: run_options(false, &stdout)?,
        started,
    };
    let knob = SlowKnob::new();
    knob.set(None);
    // Stored baselines are recorded once, on the quiet machine.
    let mut baselines = Vec::new();
    for d in [Design::Legacy, Design::Default] {
        status(&format!(
            "bench gate: recording a {}-run baseline of gatebench for the {}",
            d.base_runs(),
            d.label()
        ));
        baselines.push((d, bench.baseline(d.base_runs())?));
    }
    let mut conditions = Vec::new();
    for (label, hog) in [
        ("quiet machine", false),
        ("CPU hog on the other core", true),
    ] {
        let _hog = hog.then(Hog::start);
        let mut c = Condition {
            label,
            tallies: Vec::new(),
        };
        for d in Design::ALL {
            let base = baselines.iter().find(|(x, _)| *x == d).map(|(_, b)| b);
            for pct in SCENARIOS {
                let mut t = Tally::default();
                for i in 1..=a.checks {
                    let o = bench.check(d, base, &knob, pct)?;
                    t.add(&o);
                    status(&check_line(&bench, label, d, pct, i, &o));
                }
                c.tallies.push((d, scenario_label(pct), pct, t));
            }
        }
        conditions.push(c);
    }
    drop(knob);
    Ok(render(a, &conditions, started))
}

/// The status line after one check.
fn check_line(
    b: &Bench<'_>,
    condition: &str,
    d: Design,
    pct: Option<u32>,
    i: usize,
    o: &CheckOutcome,
) -> String {
    let what = match (pct.is_some(), o.caught) {
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
        "bench gate [{condition}] {}: {}: check {i}/{}: {what}{flagged}, {} runs, {SLOW_FUNCTION} {}{} [{} elapsed]",
        d.label(),
        scenario_label(pct),
        b.a.checks,
        o.runs,
        o.ratio.map_or("-".into(), change),
        if o.inconclusive { ", inconclusive at the end" } else { "" },
        duration(b.started.elapsed().as_nanos() as f64)
    )
}

/// The printed tables and the aims.
fn render(a: &BenchArgs, conditions: &[Condition], started: Instant) -> String {
    let checks = a.checks;
    let mut s = format!(
        "GATE: gatebench, {checks} checks per scenario; stored baselines recorded on the quiet machine; \
         threshold 5%, alpha 0.05, metric mean self time; runs per check as `perfgate check` takes them\n"
    );
    for c in conditions {
        let mut rows = Vec::new();
        for (d, label, pct, t) in &c.tallies {
            rows.push(vec![
                d.label().to_string(),
                label.clone(),
                if pct.is_some() {
                    percent(t.caught, checks)
                } else {
                    "-".into()
                },
                percent(t.false_alarms, checks),
                percent(t.inconclusive, checks),
                format!("{:.1}", t.runs as f64 / checks as f64),
                change(median(&t.ratios)),
            ]);
        }
        s.push_str(&format!("\n{}:\n", c.label));
        s.push_str(&table(
            &[
                "design",
                "scenario",
                "caught (hash_block regressed)",
                "false alarms",
                "inconclusive at the end",
                "mean head runs (pairs for A/B)",
                "hash_block change (median)",
            ],
            rows,
            2,
        ));
    }
    s.push_str(&aims(checks, conditions));
    s.push_str(&simulated());
    s.push_str(&format!(
        "gate bench took {}\n",
        duration(started.elapsed().as_nanos() as f64)
    ));
    s
}

/// The aims, met or not, from the hog condition.
fn aims(checks: usize, conditions: &[Condition]) -> String {
    let Some(hog) = conditions.iter().find(|c| c.label.starts_with("CPU hog")) else {
        return String::new();
    };
    let find = |d: Design, pct: Option<u32>| {
        hog.tallies
            .iter()
            .find(|(x, _, p, _)| *x == d && *p == pct)
            .map(|(_, _, _, t)| t)
    };
    let mut out = String::new();
    if let (Some(aa), Some(ten)) = (find(Design::Default, None), find(Design::Default, Some(10))) {
        let mean_runs = ten.runs as f64 / checks as f64;
        let met = aa.false_alarms == 0 && ten.caught * 20 >= checks * 19 && mean_runs <= 15.0;
        out.push_str(&format!(
            "aim (CPU hog, default): 0 false alarms in {checks} A/A checks, ≥ 95% of +10% caught, ≤ 15 mean head runs: \
             {} false alarms, {} caught, {mean_runs:.1} runs ({})\n",
            aa.false_alarms,
            percent(ten.caught, checks),
            if met { "met" } else { "NOT met" }
        ));
    }
    if let Some(aa) = find(Design::Interleaved, None) {
        out.push_str(&format!(
            "aim (CPU hog, A/B against a head built the same way): 0 false alarms in {checks} A/A checks: {} ({})\n",
            aa.false_alarms,
            if aa.false_alarms == 0 { "met" } else { "NOT met" }
        ));
    }
    out
}

/// The same designs in the seeded simulation of `gate::sim` (lognormal noise 3% per function and run, 2%
/// per run, slow drift, a ±2% shift per function between machines): what the unit tests pin.
fn simulated() -> String {
    use crate::gate::sim::{simulate, standard_designs, table as sim_table, SimConfig};
    let config = SimConfig::default();
    let results = simulate(&standard_designs(), &config);
    let mut rows = sim_table(&results);
    if rows.is_empty() {
        return String::new();
    }
    let header: Vec<String> = rows.remove(0);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    format!(
        "\nsimulated (seeded, {} baselines × {} checks per design, the same draws for every design):\n{}",
        config.baselines,
        config.checks_per_baseline,
        table(&header, rows, 1)
    )
}
