//! `perfgate compare`: interleaved A/B of two commands on this machine, gated function by function.
use std::ffi::OsString;

use anyhow::{Context, Result};

use super::suite::Outputs;
use super::{overrides, run_options, selection, status, Exit, RunProgress};
use crate::cli::{CompareArgs, FailOnArg};
use crate::gate::baseline::validate_settings;
use crate::gate::model::{Comparison, GateSettings};
use crate::report::check_table;
use crate::report::escape::terminal;
use crate::report::json::{BenchmarkReport, FailOn};
use crate::session::runs;
use crate::session::Target;

pub(super) fn run(a: CompareArgs) -> Result<Exit> {
    let settings = settings_of(&a)?;
    let outputs = Outputs::of(&a.reports);
    for out in [&outputs.junit, &outputs.markdown, &outputs.json]
        .into_iter()
        .flatten()
    {
        if out.as_os_str() != "-" {
            crate::files::check_writable(out)?;
        }
    }
    let sel = selection(&a.select);
    let mut opts = run_options(&a.run, false, 0)?;
    let follow = opts.follow;
    let target = |what: &str, cmd: &str| -> Result<Target> {
        let argv: Vec<OsString> = shell_words::split(cmd)
            .map_err(|e| anyhow::anyhow!("--{what}-cmd {cmd:?}: {e}"))?
            .into_iter()
            .map(OsString::from)
            .collect();
        Target::for_run(&argv, &sel, follow)
            .with_context(|| format!("--{what}-cmd: the command cannot be traced"))
    };
    let base = target("base", &a.base_cmd)?;
    let head = target("head", &a.head_cmd)?;
    opts.stdout = crate::run::Stdout::Stderr;
    super::calibrate(&mut opts)?;
    status(&format!(
        "interleaved A/B: `{}` (base) against `{}` (head), {} pairs first, up to {}",
        terminal(&a.base_cmd),
        terminal(&a.head_cmd),
        settings.runs,
        settings.max_runs
    ));
    let r = runs::interleaved(
        &base,
        &head,
        &opts,
        &settings,
        "compare",
        &mut RunProgress::new(settings.runs * 2),
    )?;
    let failed = !r.comparison.passed();
    let report = report_of(&a, r.comparison);
    let table = check_table::table(
        report.comparison.as_ref().unwrap_or(&Default::default()),
        &super::table_style(outputs.to_stdout()),
    );
    if outputs.to_stdout() {
        eprint!("{table}");
    } else {
        super::print_stdout(&table);
    }
    outputs.write_single(&report, &crate::report::json::Context::default(), false)?;
    outputs.announce();
    Ok(if failed { Exit::Regression } else { Exit::Ok })
}

/// The gate settings of the options, validated (`--max-runs` raised to `--runs`).
fn settings_of(a: &CompareArgs) -> Result<GateSettings> {
    let mut settings = GateSettings::default();
    overrides(&a.gate).apply(&mut settings);
    if let Some(r) = a.runs {
        settings.runs = r;
    }
    if let Some(m) = a.max_runs {
        settings.max_runs = m;
    }
    settings.fail_on_inconclusive = a.fail_on == FailOnArg::Inconclusive;
    validate_settings(&settings)?;
    settings.max_runs = settings.max_runs.max(settings.runs);
    Ok(settings)
}

/// The report of the comparison, with the command that reproduces it.
fn report_of(a: &CompareArgs, comparison: Comparison) -> BenchmarkReport {
    BenchmarkReport {
        name: "compare".into(),
        baseline: String::new(),
        base_commit: None,
        reproduce: format!(
            "perfgate compare --base-cmd {} --head-cmd {}",
            shell_words::quote(&a.base_cmd),
            shell_words::quote(&a.head_cmd)
        ),
        update: String::new(),
        error: None,
        context: None,
        fail_on: if a.fail_on == FailOnArg::Inconclusive {
            FailOn::Inconclusive
        } else {
            FailOn::Regression
        },
        comparison: Some(comparison),
    }
}
