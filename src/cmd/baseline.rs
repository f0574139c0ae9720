//! `perfgate baseline`: N runs of the benchmark written to a baseline file to commit; with `--all` (or
//! `--benchmark`) every benchmark of perfgate.toml into its own baseline file.
use anyhow::{Context, Result};

use super::suite::{self, Job};
use super::{overrides, run_options, shown, status, Exit, RunProgress};
use crate::cli::BaselineArgs;
use crate::gate::baseline::{validate_settings, Baseline};
use crate::gate::model::GateSettings;
use crate::profile::Machine;
use crate::report::units::plural;
use crate::session::runs::run_batch;
use crate::session::Target;

/// Runs recorded when neither `--runs` nor perfgate.toml says: what the sequential rule is designed for.
const DEFAULT_RUNS: usize = crate::gate::sequential::DEFAULT_BASE_RUNS;

pub(super) fn run(a: BaselineArgs) -> Result<Exit> {
    let Some(output) = &a.output else {
        let jobs = suite::project_jobs(&a.project)?;
        if !a.project.no_build {
            suite::build(&jobs.jobs)?;
        }
        for job in &jobs.jobs {
            record(&a, job).with_context(|| format!("recording {}", job.name))?;
        }
        if jobs.jobs.is_empty() {
            status("no benchmark in this shard");
        }
        return Ok(Exit::Ok);
    };
    let job = suite::single_job(output, &a.command, Some(&a.select));
    record(&a, &job)?;
    Ok(Exit::Ok)
}

/// Records one baseline: the job's runs, its selection, and the gate settings of perfgate.toml and the
/// command line stored in its `[gate]`.
fn record(a: &BaselineArgs, job: &Job) -> Result<()> {
    let runs = a.runs.or(job.runs).unwrap_or(DEFAULT_RUNS);
    let mut gate = job.gate.clone();
    let cli = overrides(&a.gate);
    suite::merge_gate(&mut gate, &cli);
    let mut settings = GateSettings::default();
    gate.apply(&mut settings);
    settings.runs = runs;
    validate_settings(&settings).context("--runs")?;
    let mut opts = run_options(&a.run, false, 0)?;
    opts.stdout = crate::run::Stdout::Stderr;
    let target = Target::for_run(&job.command, &job.selection, opts.follow)?;
    // The first recording of a project may name a directory that does not exist yet (`baselines/`).
    if let Some(dir) = job.baseline.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::files::create_dir_all(dir)?;
    }
    // Fail on an unwritable output before spending minutes on runs.
    crate::files::check_writable(&job.baseline)?;
    super::calibrate(&mut opts)?;
    let target = match a.overhead_budget.0 {
        Some(budget) if opts.trace.probe_cost.is_some() => super::surveyed(&target, &opts, budget)?,
        Some(_) => {
            status("warning: no calibration, so no survey: every selected function is probed");
            target
        }
        None => target,
    };
    status(&format!(
        "recording a baseline of {}: {} runs, {} in {}",
        job.name,
        runs,
        plural(target.plan.functions.len(), "function"),
        plural(target.plan.files.len(), "file")
    ));
    let mut figures = Vec::new();
    run_batch(
        &target,
        &opts,
        runs,
        runs,
        &mut figures,
        &mut RunProgress::new(runs),
    )?;
    let b = Baseline::from_runs(
        target.command(),
        target.plan.build_id.clone(),
        Machine::current(),
        gate,
        &target.selection,
        &figures,
    );
    b.write(&job.baseline)?;
    status(&format!(
        "wrote {} ({}, {}): commit it",
        shown(&job.baseline),
        plural(b.functions.len(), "function"),
        plural(b.runs, "run")
    ));
    Ok(())
}
