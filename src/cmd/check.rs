//! `perfgate check`: run a benchmark (one `--baseline`, or the benchmarks of perfgate.toml), compare every
//! function with its baseline, write the reports, exit 0 (pass), 1 (regression) or 2 (could not check).
//!
//! With perfgate.toml a benchmark that cannot be checked does not stop the others: it is an error in every
//! report and the exit code is 2. With one `--baseline` the error is also perfgate's one-line error, and
//! the report files still say what went wrong, so a CI step after this one never reads a missing file.
use std::ffi::OsString;

use anyhow::{bail, Context, Result};

use super::suite::{self, Job, Outputs};
use super::{one_line, overrides, run_options, shown, status, table_style, Exit, RunProgress};
use crate::cli::{CheckArgs, FailOnArg};
use crate::gate::baseline::{validate_settings, Baseline};
use crate::gate::figures::RunFigures;
use crate::gate::model::GateSettings;
use crate::profile::Machine;
use crate::report::check_table;
use crate::report::json::{BenchmarkReport, FailOn, Outcome};
use crate::session::runs::{self, CheckResult};
use crate::session::Target;

/// `--quick`: head runs first and at most. One place, so that the sequential rule's early looks can
/// replace it. TODO(lead): use the first looks of the sequential rule (5, then 10) once it lands.
const QUICK_RUNS: usize = 5;
const QUICK_MAX_RUNS: usize = 10;

pub(super) fn run(a: CheckArgs) -> Result<Exit> {
    let outputs = Outputs::of(&a.reports);
    outputs.check()?;
    let ctx = suite::context(&a.links, a.quick);
    let Some(baseline) = &a.baseline else {
        return run_project(&a, &outputs, ctx);
    };
    let job = suite::single_job(baseline, &a.command, None);
    let (report, head) = check_job(&a, &job);
    outputs.write_single(&report, &ctx, a.full_names)?;
    if let Some(e) = &report.error {
        // The reports say it too; perfgate's own error line is the message.
        bail!("{e}");
    }
    print_result(&a, &outputs, &report);
    if a.update {
        update(&job, &head)?;
        return Ok(Exit::Ok);
    }
    outputs.announce();
    Ok(exit_of(report.outcome()))
}

/// `check --all` / `--benchmark`: every job, one suite report.
fn run_project(
    a: &CheckArgs,
    outputs: &Outputs,
    ctx: crate::report::json::Context,
) -> Result<Exit> {
    let jobs = suite::project_jobs(&a.project)?;
    if jobs.jobs.is_empty() {
        status("no benchmark in this shard");
    }
    let build_error = if a.project.no_build {
        None
    } else {
        suite::build(&jobs.jobs).err()
    };
    let mut reports = Vec::new();
    let mut updates = Vec::new();
    for job in &jobs.jobs {
        let (report, head) = match &build_error {
            Some(e) => (error_report(a, job, e), Vec::new()),
            None => check_job(a, job),
        };
        print_result(a, outputs, &report);
        if a.update && report.error.is_none() {
            updates.push((job, head));
        }
        reports.push(report);
    }
    let s = suite::suite_of(ctx, jobs.shard, reports);
    outputs.write_suite(&s, a.full_names)?;
    outputs.announce();
    for (job, head) in updates {
        update(job, &head)?;
    }
    let outcome = s.outcome();
    // A brief line already names the command that shows the details.
    if jobs.jobs.len() > 1 && !a.brief {
        summary_lines(&s);
    }
    if a.update && outcome != Outcome::Error {
        return Ok(Exit::Ok);
    }
    Ok(exit_of(outcome))
}

fn exit_of(o: Outcome) -> Exit {
    match o {
        Outcome::Passed => Exit::Ok,
        Outcome::Failed => Exit::Regression,
        Outcome::Error => Exit::Error,
    }
}

/// The last lines of a suite: what failed and the command that shows why.
fn summary_lines(s: &crate::report::json::Suite) {
    let failed: Vec<&BenchmarkReport> = s
        .benchmarks
        .iter()
        .filter(|b| b.outcome() != Outcome::Passed)
        .collect();
    if failed.is_empty() {
        status(&format!(
            "all {} passed{}",
            crate::report::units::plural(s.benchmarks.len(), "benchmark"),
            if s.context.quick {
                " (quick verdict)"
            } else {
                ""
            }
        ));
        return;
    }
    for b in failed {
        status(&format!(
            "details: {}",
            crate::report::escape::terminal(&b.reproduce)
        ));
    }
}

/// Prints one benchmark's result: the table (or one line with `--brief`), on stderr when a report goes to
/// stdout so the two do not mix.
fn print_result(a: &CheckArgs, outputs: &Outputs, r: &BenchmarkReport) {
    let text = match (&r.comparison, a.brief) {
        (_, true) => format!("{}\n", check_table::brief(r, a.quick, a.full_names)),
        (Some(c), false) => {
            let mut style = table_style(outputs.to_stdout());
            style.full_names = a.full_names;
            style.quick = a.quick;
            check_table::table(c, &style)
        }
        (None, false) => {
            status(&format!(
                "{}: could not check: {}",
                r.name,
                crate::report::escape::terminal(r.error.as_deref().unwrap_or("?"))
            ));
            return;
        }
    };
    if outputs.to_stdout() {
        eprint!("{text}");
    } else {
        super::print_stdout(&text);
    }
}

/// Checks one job; an error is a report with the error, never a missing report.
fn check_job(a: &CheckArgs, job: &Job) -> (BenchmarkReport, Vec<RunFigures>) {
    match try_check(a, job) {
        Ok((report, head)) => (report, head),
        Err(e) => (error_report(a, job, &e), Vec::new()),
    }
}

fn error_report(a: &CheckArgs, job: &Job, e: &anyhow::Error) -> BenchmarkReport {
    let mut r = empty_report(a, job);
    r.error = Some(one_line(e));
    r
}

fn empty_report(a: &CheckArgs, job: &Job) -> BenchmarkReport {
    BenchmarkReport {
        name: job.name.clone(),
        baseline: job.baseline_shown.clone(),
        base_commit: suite::base_commit(&a.links, &job.baseline),
        reproduce: format!("perfgate check {}", job.again),
        update: format!("perfgate check {} --update", job.again),
        error: None,
        context: None,
        fail_on: match a.fail_on {
            FailOnArg::Regression => FailOn::Regression,
            FailOnArg::Inconclusive => FailOn::Inconclusive,
        },
        comparison: None,
    }
}

fn try_check(a: &CheckArgs, job: &Job) -> Result<(BenchmarkReport, Vec<RunFigures>)> {
    let base = Baseline::read(&job.baseline)?;
    let settings = settings(a, job, &base)?;
    let mut opts = run_options(&a.run, false, 0)?;
    let target = target(job, &base, opts.follow)?;
    opts.stdout = crate::run::Stdout::Stderr;
    super::calibrate(&mut opts)?;
    let same_binary = base.build_id.is_some() && base.build_id == target.plan.build_id;
    status(&format!(
        "{}checking {} against {} ({} base runs{}), {} runs first, up to {}",
        if a.quick { "quick: " } else { "" },
        shown(&target.program),
        shown(&job.baseline),
        base.runs,
        if same_binary { ", same build-id" } else { "" },
        settings.runs,
        settings.max_runs
    ));
    let result = match &a.against {
        Some(against) => {
            let base_target = against_target(against, &base, opts.follow)?;
            status(&format!(
                "interleaved A/B: `{}` (base) against `{}` (head), on this machine",
                crate::report::escape::terminal(&base_target.command().join(" ")),
                crate::report::escape::terminal(&target.command().join(" "))
            ));
            runs::interleaved(
                &base_target,
                &target,
                &opts,
                &settings,
                &job.name,
                &mut RunProgress::new(settings.runs * 2),
            )
        }
        None => runs::check(
            &target,
            &opts,
            &base,
            &settings,
            &job.name,
            &mut RunProgress::new(settings.runs),
        ),
    };
    let CheckResult {
        comparison: mut c,
        head,
        ..
    } = result.with_context(|| format!("checking against {}", shown(&job.baseline)))?;
    if let Some(w) = busy_machine_warning() {
        c.warnings.push(w);
    }
    let mut report = empty_report(a, job);
    report.comparison = Some(c);
    Ok((report, head))
}

/// `--update`: the baseline rewritten from this check's runs, keeping its settings and overrides.
fn update(job: &Job, head: &[RunFigures]) -> Result<()> {
    let base = Baseline::read(&job.baseline)?;
    // Only the command and its build-id are needed: planned as a followed run, which accepts scripts.
    let target = target(job, &base, true)?;
    let mut b = Baseline::from_runs(
        target.command(),
        target.plan.build_id.clone(),
        Machine::current(),
        base.gate.clone(),
        &base.selection(),
        head,
    );
    b.keep_overrides_of(&base);
    b.write(&job.baseline)?;
    status(&format!(
        "updated {} with {} runs",
        shown(&job.baseline),
        head.len()
    ));
    Ok(())
}

/// The settings in force: defaults, the baseline's `[gate]`, perfgate.toml's, then the command line;
/// `--quick` caps the runs last.
fn settings(a: &CheckArgs, job: &Job, base: &Baseline) -> Result<GateSettings> {
    let mut settings = GateSettings::default();
    base.gate.apply(&mut settings);
    job.gate.apply(&mut settings);
    overrides(&a.gate).apply(&mut settings);
    if settings.rule == crate::gate::model::Rule::Legacy
        && a.runs.is_none()
        && base.gate.runs.is_none()
    {
        // The first rule started with as many head runs as the baseline had, at most 10.
        settings.runs = base.runs.min(10);
    }
    if let Some(r) = a.runs {
        settings.runs = r;
    }
    if let Some(m) = a.max_runs {
        settings.max_runs = m;
    }
    if a.fail_on == FailOnArg::Inconclusive {
        settings.fail_on_inconclusive = true;
    }
    if a.quick {
        settings.runs = settings.runs.min(QUICK_RUNS);
        settings.max_runs = settings.max_runs.min(QUICK_MAX_RUNS);
    }
    validate_settings(&settings)?;
    settings.max_runs = settings.max_runs.max(settings.runs);
    Ok(settings)
}

/// The command to run (the job's, or the baseline's), planned with the baseline's selection; refused
/// before any run when it shares no function with the baseline.
fn target(job: &Job, base: &Baseline, follow: bool) -> Result<Target> {
    let argv: Vec<OsString> = if job.command.is_empty() {
        base.command.iter().map(OsString::from).collect()
    } else {
        job.command.clone()
    };
    let target = Target::for_run(&argv, &base.selection(), follow).with_context(|| {
        if job.command.is_empty() {
            format!(
                "the baseline's command `{}` cannot be traced",
                crate::report::escape::terminal(&base.command.join(" "))
            )
        } else {
            "the command cannot be traced".to_string()
        }
    })?;
    let planned: std::collections::BTreeSet<(&str, &str)> = target
        .plan
        .functions
        .iter()
        .map(|f| (f.module.as_str(), f.raw_name.as_str()))
        .collect();
    // Following, the functions may be in the processes the command starts: the runs tell.
    if !follow
        && !base
            .functions
            .iter()
            .any(|f| planned.contains(&(f.module.as_str(), f.symbol.as_str())))
    {
        bail!(
            "no function in common between {} and this command: is it the same benchmark?",
            shown(&job.baseline)
        );
    }
    Ok(target)
}

/// The base command of `--against`, planned with the baseline's selection.
fn against_target(against: &str, base: &Baseline, follow: bool) -> Result<Target> {
    let argv: Vec<OsString> = shell_words::split(against)
        .map_err(|e| anyhow::anyhow!("--against {against:?}: {e}"))?
        .into_iter()
        .map(OsString::from)
        .collect();
    Target::for_run(&argv, &base.selection(), follow)
        .context("--against: the base command cannot be traced")
}

/// A warning when the machine was busier than its cores during the check (other work skews timings).
fn busy_machine_warning() -> Option<String> {
    let load = Machine::load_average()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    (load > cores).then(|| {
        format!("the machine was busy during the check (load average {load:.1} on {cores} cores): timings are noisier")
    })
}
