//! `perfgate baseline`: N runs of the benchmark written to a baseline file to commit.
use anyhow::{Context, Result};

use super::{overrides, run_options, selection, shown, status, Exit, RunProgress};
use crate::cli::BaselineArgs;
use crate::gate::baseline::{validate_settings, Baseline};
use crate::gate::model::GateSettings;
use crate::profile::Machine;
use crate::report::units::plural;
use crate::session::runs::run_batch;
use crate::session::Target;

pub(super) fn run(a: BaselineArgs) -> Result<Exit> {
    let mut settings = GateSettings::default();
    let gate = overrides(&a.gate);
    gate.apply(&mut settings);
    settings.runs = a.runs;
    validate_settings(&settings).context("--runs")?;
    let mut opts = run_options(&a.run, false, 0)?;
    opts.stdout = crate::run::Stdout::Stderr;
    let sel = selection(&a.select);
    let target = Target::for_run(&a.command, &sel, opts.follow)?;
    // Fail on an unwritable output before spending minutes on runs.
    crate::files::check_writable(&a.output)?;
    status(&format!(
        "recording a baseline of {} runs, {} in {}",
        a.runs,
        plural(target.plan.functions.len(), "function"),
        plural(target.plan.files.len(), "file")
    ));
    let mut runs = Vec::new();
    run_batch(
        &target,
        &opts,
        a.runs,
        a.runs,
        &mut runs,
        &mut RunProgress::new(a.runs),
    )?;
    let b = Baseline::from_runs(
        target.command(),
        target.plan.build_id.clone(),
        Machine::current(),
        gate,
        &sel,
        &runs,
    );
    b.write(&a.output)?;
    status(&format!(
        "wrote {} ({}, {}): commit it",
        shown(&a.output),
        plural(b.functions.len(), "function"),
        plural(b.runs, "run")
    ));
    Ok(Exit::Ok)
}
