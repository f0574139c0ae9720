//! What tracing real, optimised code costs, and what the cost-aware probe set buys (issue 9): per
//! real-library fixture, the untraced wall time against traced runs with every function probed on its
//! first byte (the plan before placement), with placement only, and with placement plus the survey's
//! budgeted set; the survey's own time; functions per probe kind before and after placement; how many the
//! budget left to their callers; whether a 10-run check catches the fixture's knob and names a function
//! the knob moves, and whether an A/A check passes; perfgate's fixed cost per run. Then the cost of one
//! traced call per probe kind, perfgate against the least a probe can do attached the same way (the BPF
//! object's `pg_count`: one atomic add per hit), and the compensation's error on a parent calling a tiny
//! child 1,000,000 times, per entry kind of the child.
//!
//! Every run goes through `session`, as `perfgate record`/`baseline`/`check` run it.
use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{argv, fine, fixture, median, only, ratio, run_options, table, REPEATS};
use crate::cli::BenchArgs;
use crate::cmd::status;
use crate::files::PrivateDir;
use crate::gate::baseline::{Baseline, GateOverrides};
use crate::gate::model::{Comparison, GateSettings, Verdict};
use crate::gate::rule;
use crate::plan::{Plan, Selection};
use crate::profile::{Machine, ProbeCosts, ProbeKind, Profile};
use crate::report::units::{count, duration};
use crate::session::runs::{self, Quiet};
use crate::session::survey::{survey, SurveySettings};
use crate::session::{self, calibrate, RunOptions, Target};

/// A traced run of a plan that may take minutes (every function probed on its first byte) is stopped here;
/// the table then says "over" this.
const SLOW_PLAN_TIMEOUT: Duration = Duration::from_secs(60);
/// Base runs and the most head runs of the knob's check (the "10-run check").
const CHECK_RUNS: usize = 10;
/// Calls of the tiny child in the per-call and compensation parts.
const CALLS: u64 = 1_000_000;
/// The single-stepped child costs ~10 µs a call: fewer calls keep its runs to a second.
const SSTEP_CALLS: u64 = 100_000;

/// A real-library fixture (fixtures/README.md).
struct Workload {
    fixture: &'static str,
    /// The `--lib` glob: every function of the library is planned.
    lib: &'static str,
    /// The knob's environment variable (`=1` slows one library-level behaviour down).
    knob: &'static str,
    /// Functions the knob moves (fixtures/README.md): the check must flag one of them (substring match on
    /// the reported name).
    moves: &'static [&'static str],
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        fixture: "sqlite_bench",
        lib: "libsqlite3*",
        knob: "SQLITE_BENCH_SLOW",
        moves: &[
            "sqlite3PagerGet",
            "sqlite3BtreeIndexMoveto",
            "sqlite3BtreeTableMoveto",
            "sqlite3VdbeExec",
            "sqlite3_step",
            "sqlite3OsRead",
        ],
    },
    Workload {
        fixture: "zstd_bench",
        lib: "libzstd*",
        knob: "ZSTD_BENCH_SLOW",
        moves: &[
            "ZSTD_compressEnd",
            "ZSTD_compress_usingDict",
            "ZSTD_compressCCtx",
            "ZSTD_minCLevel",
        ],
    },
    Workload {
        fixture: "leveldb_bench",
        lib: "libleveldb*",
        knob: "LEVELDB_BENCH_SLOW",
        moves: &["Table::BlockReader", "Table::InternalGet"],
    },
];

/// Sets (`=1`) or clears one knob for the benchmarks perfgate spawns (they inherit its environment) and
/// restores the original value on drop. The bench runs on this one thread, so changing the environment is
/// sound.
struct Knob {
    var: &'static str,
    saved: Option<OsString>,
}

impl Knob {
    fn new(var: &'static str) -> Knob {
        let k = Knob {
            var,
            saved: std::env::var_os(var),
        };
        k.set(false);
        k
    }

    fn set(&self, on: bool) {
        if on {
            std::env::set_var(self.var, "1");
        } else {
            std::env::remove_var(self.var);
        }
    }
}

impl Drop for Knob {
    fn drop(&mut self) {
        match &self.saved {
            Some(v) => std::env::set_var(self.var, v),
            None => std::env::remove_var(self.var),
        }
    }
}

/// One traced run as the bench sees it.
struct Timed {
    /// The benchmark's wall time, release to exit, ns.
    wall: f64,
    /// perfgate's own time around it (load, attach, detach, reading the maps), ns.
    fixed: f64,
    attach: f64,
    detach: f64,
    /// Stopped by [`SLOW_PLAN_TIMEOUT`].
    timed_out: bool,
    profile: Profile,
}

fn timed_run(target: &Target, opts: &RunOptions) -> Result<Timed> {
    let t = Instant::now();
    let p = session::trace_once(target, opts)?;
    let outer = t.elapsed().as_nanos() as f64;
    if let Some(stop) = crate::run::signals::stop_requested() {
        bail!("stopped by {}", stop.name());
    }
    let wall = p.wall_ns as f64;
    let timed_out = opts
        .trace
        .timeout
        .is_some_and(|limit| !p.exit.success() && wall >= limit.as_nanos() as f64);
    if !p.exit.success() && !timed_out {
        bail!(
            "`{}` failed under tracing ({})",
            target.command().join(" "),
            p.exit
        );
    }
    Ok(Timed {
        wall,
        fixed: (outer - wall).max(0.0),
        attach: p.accounting.attach_ns as f64,
        detach: p.accounting.detach_ns as f64,
        timed_out,
        profile: p,
    })
}

/// Functions per probe kind of a plan: `nop5 · emulated · single-step`.
fn kinds(plan: &Plan) -> String {
    let n = |k: ProbeKind| plan.functions.iter().filter(|f| f.probe == k).count();
    format!(
        "{} · {} · {}",
        n(ProbeKind::Nop5),
        n(ProbeKind::Emulated),
        n(ProbeKind::SingleStep)
    )
}

/// "1.23 s (4.56×)", or "over 60 s (over 700×)" when the run was stopped.
fn wall_cell(t: &Timed, untraced: f64) -> (String, String) {
    if t.timed_out {
        (
            format!("over {}", duration(t.wall)),
            format!("over {}", ratio(t.wall / untraced)),
        )
    } else {
        (duration(t.wall), ratio(t.wall / untraced))
    }
}

/// What the check and the A/A check of one workload found.
struct Checked {
    aa: String,
    aa_passed: bool,
    aa_flagged: String,
    knob: String,
    knob_caught: bool,
    flagged: String,
    /// When the knob was not caught: what the check said of the functions it moves.
    missed: Vec<String>,
}

fn verdict_cell(c: &Comparison, runs: usize) -> String {
    let what = if c.passed() && !rule::undecided(c) {
        "pass"
    } else if c.passed() {
        "pass (inconclusive)"
    } else {
        "FAIL"
    };
    format!("{what}, {runs} runs")
}

fn check_knob(w: &Workload, target: &Target, opts: &RunOptions) -> Result<Checked> {
    let knob = Knob::new(w.knob);
    let settings = GateSettings {
        max_runs: CHECK_RUNS,
        ..GateSettings::default()
    };
    status(&format!(
        "bench cost: {}: baseline of {CHECK_RUNS} runs",
        w.fixture
    ));
    let mut figures = Vec::new();
    runs::run_batch(
        target,
        opts,
        CHECK_RUNS,
        CHECK_RUNS,
        &mut figures,
        &mut Quiet,
    )?;
    let base = Baseline::from_runs(
        target.command(),
        target.plan.build_id.clone(),
        Machine::current(),
        GateOverrides::default(),
        &target.selection,
        &figures,
    );
    status(&format!("bench cost: {}: A/A check", w.fixture));
    let aa = runs::check(target, opts, &base, &settings, w.fixture, &mut Quiet)?;
    status(&format!(
        "bench cost: {}: check with {}=1",
        w.fixture, w.knob
    ));
    knob.set(true);
    let slow = runs::check(target, opts, &base, &settings, w.fixture, &mut Quiet);
    knob.set(false);
    let slow = slow?;
    let c = &slow.comparison;
    let named = c
        .failures()
        .any(|f| w.moves.iter().any(|m| f.name.contains(m)));
    let knob_caught = !c.passed() && named;
    let missed = if knob_caught {
        Vec::new()
    } else {
        c.functions
            .iter()
            .filter(|f| w.moves.iter().any(|m| f.name.contains(m)))
            .map(|f| {
                let metrics: Vec<String> = f
                    .metrics
                    .iter()
                    .map(|m| {
                        format!(
                            "{} {}{}",
                            m.metric.short(),
                            m.verdict.label(),
                            m.figures
                                .ratio
                                .map(|r| format!(" {}", crate::report::units::change(r)))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                crate::report::escape::terminal(&format!(
                    "{}: {}: {}{}",
                    w.fixture,
                    f.name,
                    if metrics.is_empty() {
                        "no metric gated".to_string()
                    } else {
                        metrics.join(", ")
                    },
                    if f.notes.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", f.notes.join("; "))
                    }
                ))
            })
            .collect()
    };
    Ok(Checked {
        missed,
        aa: verdict_cell(&aa.comparison, aa.head.len()),
        aa_passed: aa.comparison.passed(),
        aa_flagged: flagged(&aa.comparison),
        knob: verdict_cell(c, slow.head.len()),
        knob_caught,
        flagged: flagged(c),
    })
}

/// The failing functions, largest change first (at most three named), e.g. `main +21% (mean self)`.
fn flagged(c: &Comparison) -> String {
    let mut failing: Vec<_> = c.failures().collect();
    failing.sort_by(|a, b| {
        b.figures
            .ratio
            .partial_cmp(&a.figures.ratio)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut names: Vec<String> = failing
        .iter()
        .take(3)
        .map(|f| {
            let r = f
                .figures
                .ratio
                .map(|r| format!(" {}", crate::report::units::change(r)))
                .unwrap_or_default();
            // What flagged it: the metric, and the verdict when it is not a regression.
            let why: Vec<String> = f
                .metric
                .map(|m| m.short())
                .into_iter()
                .chain((f.verdict != Verdict::Regressed).then(|| f.verdict.label().to_string()))
                .collect();
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join(", "))
            };
            format!("{}{r}{why}", crate::report::escape::terminal(&f.name))
        })
        .collect();
    if failing.len() > 3 {
        names.push(format!("{} more", failing.len() - 3));
    }
    if names.is_empty() {
        "-".into()
    } else {
        names.join(", ")
    }
}

/// Everything measured on one workload.
struct Measured {
    rows: Vec<Vec<String>>,
    check: Checked,
    dropped: usize,
    planned: usize,
    fixed: Vec<String>,
    gated_ratio: f64,
    survey_ratio: f64,
    /// The survey's two runs, release to exit (perfgate's own work apart, as for the gated run).
    survey_net_ratio: f64,
}

/// Everything `bench cost` measures on one fixture. One piece: a script of runs in a fixed order (untraced,
/// first byte, placement, survey, gated runs, the knob's checks), each feeding the table's rows, which
/// read best next to the runs that produce them.
fn workload(a: &BenchArgs, w: &Workload, costs: ProbeCosts, stdout: &Path) -> Result<Measured> {
    let program = fixture(a, w.fixture)?;
    let args = argv(&program, &[]);
    let lib = |no_placement| Selection {
        libs: vec![w.lib.to_string()],
        no_placement,
        ..Selection::default()
    };
    let t = Instant::now();
    let placed = Target::new(&args, &lib(false))?;
    let plan_ns = t.elapsed().as_nanos() as f64;
    let first_byte = Target::new(&args, &lib(true))?;
    let plain = run_options(false, stdout)?;
    let mut compensated = plain.clone();
    compensated.trace.probe_cost = Some(costs);
    let mut slow = plain.clone();
    slow.trace.timeout = Some(SLOW_PLAN_TIMEOUT);

    let mut untraced = Vec::new();
    for i in 1..=REPEATS {
        status(&format!(
            "bench cost: {} untraced, run {i}/{REPEATS}",
            w.fixture
        ));
        untraced.push(session::untraced_once(&placed, &plain)?.as_nanos() as f64);
    }
    let untraced = median(&untraced);
    status(&format!(
        "bench cost: {}: every function on its first byte (stopped after {})",
        w.fixture,
        duration(SLOW_PLAN_TIMEOUT.as_nanos() as f64)
    ));
    let all = timed_run(&first_byte, &slow)?;
    status(&format!("bench cost: {}: placement only", w.fixture));
    let placement = timed_run(&placed, &slow)?;
    status(&format!("bench cost: {}: survey", w.fixture));
    let s = survey(&placed, &compensated, &SurveySettings::default())?;
    let mut sel = placed.selection.clone();
    sel.too_hot = s.too_hot.clone();
    let gated_target = Target::new(&args, &sel)?;
    let mut gated = Vec::new();
    for i in 1..=REPEATS {
        status(&format!(
            "bench cost: {}: placement + budget, run {i}/{REPEATS}",
            w.fixture
        ));
        gated.push(timed_run(&gated_target, &compensated)?);
    }
    let pick = |f: fn(&Timed) -> f64| median(&gated.iter().map(f).collect::<Vec<_>>());
    let gated_wall = pick(|t| t.wall);
    let check = check_knob(w, &gated_target, &compensated)?;

    let probed = |t: &Target| count(t.plan.functions.len() as u64);
    let calls = |t: &Timed| {
        let n: u64 = t.profile.per_function().iter().map(|s| s.calls).sum();
        if t.timed_out {
            format!("{} until stopped", count(n))
        } else {
            count(n)
        }
    };
    let (all_wall, all_ratio) = wall_cell(&all, untraced);
    let (placed_wall, placed_ratio) = wall_cell(&placement, untraced);
    let survey_ns = s.total.as_nanos() as f64;
    let name = w.fixture.to_string();
    let rows = vec![
        vec![
            name.clone(),
            "untraced".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            duration(untraced),
            "1×".into(),
        ],
        vec![
            String::new(),
            "every function, first byte".into(),
            probed(&first_byte),
            kinds(&first_byte.plan),
            calls(&all),
            all_wall,
            all_ratio,
        ],
        vec![
            String::new(),
            "placement only".into(),
            probed(&placed),
            kinds(&placed.plan),
            calls(&placement),
            placed_wall,
            placed_ratio,
        ],
        vec![
            String::new(),
            format!(
                "survey (both runs, {} relinks, {})",
                s.relinks,
                duration(s.relinking.as_nanos() as f64)
            ),
            probed(&placed),
            kinds(&placed.plan),
            "-".into(),
            duration(survey_ns),
            ratio(survey_ns / untraced),
        ],
        vec![
            String::new(),
            "placement + budget (gated run)".into(),
            probed(&gated_target),
            kinds(&gated_target.plan),
            calls(&gated[gated.len() / 2]),
            duration(gated_wall),
            ratio(gated_wall / untraced),
        ],
    ];
    let fixed = vec![
        name,
        duration(plan_ns),
        duration(pick(|t| t.fixed)),
        duration(pick(|t| t.attach)),
        duration(pick(|t| t.detach)),
        duration(pick(|t| (t.fixed - t.attach - t.detach).max(0.0))),
    ];
    Ok(Measured {
        rows,
        check,
        dropped: s.too_hot.len(),
        planned: placed.plan.functions.len(),
        fixed,
        gated_ratio: gated_wall / untraced,
        survey_ratio: survey_ns / untraced,
        survey_net_ratio: (s.untraced + s.surveyed).as_nanos() as f64 / untraced,
    })
}

fn value_line(stdout: &str, key: &str) -> Result<f64> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .with_context(|| format!("the entry fixture printed no `{key}<float>` line: {stdout:?}"))
}

fn fixture_value(target: &Target, opts: &RunOptions, stdout: &Path, key: &str) -> Result<f64> {
    let t = timed_run(target, opts)?;
    if t.timed_out {
        bail!("the entry fixture was stopped by the timeout");
    }
    let text = std::fs::read_to_string(stdout)
        .with_context(|| format!("cannot read {}", stdout.display()))?;
    value_line(&text, key)
}

/// The entry fixture's modes: child kind, calls.
fn modes() -> [(&'static str, &'static str, u64); 3] {
    [
        ("nop5", "5-byte nop", CALLS),
        ("emulated", "push %rbp", CALLS),
        ("sstep", "mov (single-step)", SSTEP_CALLS),
    ]
}

fn kind_of(mode: &str) -> ProbeKind {
    match mode {
        "nop5" => ProbeKind::Nop5,
        "emulated" => ProbeKind::Emulated,
        _ => ProbeKind::SingleStep,
    }
}

/// Per-call cost: perfgate's program against the minimal counting one, same attach, same fixture loop.
fn per_call(a: &BenchArgs, stdout: &Path) -> Result<String> {
    let program = fixture(a, "entry")?;
    let mut rows = Vec::new();
    for (mode, insn, calls) in modes() {
        let calls_s = calls.to_string();
        let args = [mode, calls_s.as_str()];
        let func = format!("f_{mode}");
        let target = Target::new(&argv(&program, &args), &only(&[&func]))?;
        let plain = run_options(false, stdout)?;
        let mut counting = plain.clone();
        counting.trace.count_only = true;
        let (mut base, mut ours, mut least) = (Vec::new(), Vec::new(), Vec::new());
        let mut hits_ok = true;
        for i in 1..=REPEATS {
            status(&format!("bench cost: per call, {func}, run {i}/{REPEATS}"));
            base.push(value_line(
                &super::untraced(&program, &args)?.0,
                "ns_per_call=",
            )?);
            ours.push(fixture_value(&target, &plain, stdout, "ns_per_call=")?);
            let t = timed_run(&target, &counting)?;
            hits_ok &= t.profile.accounting.count_hits == Some(2 * calls);
            let text = std::fs::read_to_string(stdout)?;
            least.push(value_line(&text, "ns_per_call=")?);
        }
        let base = median(&base);
        let (ours, least) = (median(&ours) - base, median(&least) - base);
        rows.push(vec![
            format!("{func} ({insn})"),
            count(calls),
            fine(ours),
            format!(
                "{}{}",
                fine(least),
                if hits_ok { "" } else { " (hits MISMATCH)" }
            ),
            fine(ours - least),
            ratio(ours / least),
        ]);
    }
    let mut s = format!(
        "PER TRACED CALL (entry + return), added to the fixture's own loop timing, median of {REPEATS}: perfgate's \
         program against the minimal one (one atomic add per hit), both one uprobe_multi session link\n"
    );
    s.push_str(&table(
        &[
            "function (probed instruction)",
            "calls",
            "perfgate",
            "minimal counter",
            "perfgate's own work",
            "perfgate / minimal",
        ],
        rows,
        1,
    ));
    Ok(s)
}

/// Compensation: loop_parent's compensated inclusive time against the time the program measures for it
/// untraced, per kind of the child's probe.
fn compensation(a: &BenchArgs, costs: ProbeCosts, stdout: &Path) -> Result<(String, bool)> {
    let program = fixture(a, "entry")?;
    let mut rows = Vec::new();
    let mut all_within = true;
    for (mode, insn, calls) in modes() {
        let calls_s = calls.to_string();
        let args = [mode, calls_s.as_str(), "parent"];
        let child = format!("f_{mode}");
        let target = Target::new(&argv(&program, &args), &only(&["loop_parent", &child]))?;
        let mut opts = run_options(false, stdout)?;
        opts.trace.probe_cost = Some(costs);
        let (mut untraced, mut raw, mut comp) = (Vec::new(), Vec::new(), Vec::new());
        for i in 1..=REPEATS {
            status(&format!(
                "bench cost: compensation, {child}, run {i}/{REPEATS}"
            ));
            untraced.push(value_line(
                &super::untraced(&program, &args)?.0,
                "parent_ns=",
            )?);
            let t = timed_run(&target, &opts)?;
            let p = &t.profile;
            let Some(id) = p.functions.iter().position(|f| f.name == "loop_parent") else {
                bail!("loop_parent is not in the entry fixture's plan (rebuild the fixtures)");
            };
            let Some(st) = p.per_function().into_iter().find(|s| s.func as usize == id) else {
                bail!("loop_parent was not called in the traced run");
            };
            let own = costs.inside(p.functions[id].probe);
            raw.push(st.inclusive.sum_ns as f64);
            // Not clamped at 0 (as reports do): the error's sign and size are the point here.
            comp.push(st.inclusive.sum_ns as f64 - st.overhead_ns as f64 - own * st.calls as f64);
        }
        let (u, r, c) = (median(&untraced), median(&raw), median(&comp));
        let err = (c - u) / u;
        all_within &= err.abs() <= 0.10;
        let signed = |ns: f64| {
            if ns < 0.0 {
                format!("-{}", fine(-ns))
            } else {
                fine(ns)
            }
        };
        rows.push(vec![
            format!("{child} ({insn})"),
            count(calls),
            duration(u),
            duration(r),
            signed(c),
            format!("{:+.1}%", err * 100.0),
            signed((c - u) / calls as f64),
            fine(costs.of(kind_of(mode))),
        ]);
    }
    let mut s = format!(
        "COMPENSATION: loop_parent calls a tiny child N times; its compensated inclusive time against the time \
         the program measures for that call untraced (median of {REPEATS}; aim: within 10%). The error per child \
         call is the calibration's error: within 10% of a 1 ns child needs the probe's cost known to 0.1 ns\n"
    );
    s.push_str(&table(
        &[
            "child (probed instruction)",
            "calls",
            "untraced (self-timed)",
            "traced inclusive",
            "compensated",
            "error",
            "error per child call",
            "calibrated cost",
        ],
        rows,
        1,
    ));
    Ok((s, all_within))
}

/// `perfgate bench cost`. One piece: the calibration, each fixture's figures and the report's tables and
/// aims are one sequence of sections, in the order they print.
pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    let stdout = scratch.file("cost.out");
    status("bench cost: calibrating the probe cost (once, as check and baseline do)");
    let t = Instant::now();
    let costs = calibrate::calibrate(&run_options(false, &stdout)?.trace)?;
    let calibration_ns = t.elapsed().as_nanos() as f64;
    let mut rows = Vec::new();
    let mut checks = Vec::new();
    let mut fixed = Vec::new();
    let mut aims = Vec::new();
    let mut missed: Vec<String> = Vec::new();
    let chosen: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| a.workload.as_ref().is_none_or(|n| n == w.fixture))
        .collect();
    if chosen.is_empty() {
        bail!(
            "--workload {}: not one of {}",
            a.workload.as_deref().unwrap_or(""),
            WORKLOADS.map(|w| w.fixture).join(", ")
        );
    }
    for w in chosen {
        let m = workload(a, w, costs, &stdout)?;
        rows.extend(m.rows);
        checks.push(vec![
            w.fixture.to_string(),
            format!("{} of {}", m.dropped, m.planned),
            m.check.aa.clone(),
            m.check.aa_flagged.clone(),
            format!("{}=1: {}", w.knob, m.check.knob),
            m.check.flagged.clone(),
        ]);
        fixed.push(m.fixed);
        missed.extend(m.check.missed.iter().cloned());
        aims.push(format!(
            "{}: gated {} (aim ≤ 3×, perfgate's fixed cost apart) {}, survey {} in all, its two runs {} \
             (perfgate's work apart; aim ≤ 10×, judged as the gated run is) {}, knob {}, A/A {}",
            w.fixture,
            ratio(m.gated_ratio),
            if m.gated_ratio <= 3.0 {
                "met"
            } else {
                "MISSED"
            },
            ratio(m.survey_ratio),
            ratio(m.survey_net_ratio),
            if m.survey_net_ratio <= 10.0 {
                "met"
            } else {
                "MISSED"
            },
            if m.check.knob_caught {
                "caught and named"
            } else {
                "NOT CAUGHT"
            },
            if m.check.aa_passed {
                "passed"
            } else {
                "FAILED"
            },
        ));
    }
    let mut s = format!(
        "COST OF TRACING REAL LIBRARIES: every function of the library planned, no filters; wall time of the \
         benchmark (release to exit; median of {REPEATS} for untraced and gated runs, one run otherwise, stopped \
         after {}); probe kinds: nop5 · emulated · single-step\n",
        duration(SLOW_PLAN_TIMEOUT.as_nanos() as f64)
    );
    s.push_str(&table(
        &[
            "fixture",
            "plan",
            "functions",
            "probe kinds",
            "calls traced",
            "wall",
            "× untraced",
        ],
        rows,
        4,
    ));
    s.push_str(&format!(
        "\nTHE GATE ON THE BUDGETED SET: a baseline of {CHECK_RUNS} runs, an A/A check and a check with the knob \
         (at most {CHECK_RUNS} runs each, the default rule); flagged: the largest regressions\n"
    ));
    s.push_str(&table(
        &[
            "fixture",
            "left to callers",
            "A/A check",
            "flagged",
            "knob check",
            "flagged",
        ],
        checks,
        1,
    ));
    s.push_str(&format!(
        "\nFIXED COST (perfgate's time outside the benchmark's, per gated run, median of {REPEATS}; calibration \
         once per check/baseline: {}; detach: starting to close the links, which then close in the background \
         while the next run starts)\n",
        duration(calibration_ns)
    ));
    s.push_str(&table(
        &[
            "fixture",
            "plan (ELF + placement)",
            "per run",
            "attach",
            "detach",
            "load, spawn, read",
        ],
        fixed,
        1,
    ));
    s.push('\n');
    s.push_str(&per_call(a, &stdout)?);
    s.push('\n');
    let (comp, within) = compensation(a, costs, &stdout)?;
    s.push_str(&comp);
    aims.push(format!(
        "compensation within 10% for every child kind: {}",
        if within { "met" } else { "MISSED" }
    ));
    if !missed.is_empty() {
        s.push_str(&format!(
            "\nKNOB NOT CAUGHT: what the knob's check said of the functions it moves\n  {}\n",
            missed.join("\n  ")
        ));
    }
    s.push_str(&format!("\nAIMS (issue 9):\n  {}\n", aims.join("\n  ")));
    Ok(s)
}
