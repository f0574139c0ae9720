//! `perfgate check`: run the baseline's command, compare every function with the baseline, write the
//! reports, exit 0 (pass) or 1 (regression).
use std::ffi::OsString;

use anyhow::{bail, Context, Result};

use super::{overrides, run_options, shown, status, write_report, Exit, RunProgress};
use crate::cli::CheckArgs;
use crate::gate::baseline::{validate_settings, Baseline};
use crate::gate::model::{Comparison, GateSettings};
use crate::profile::Machine;
use crate::report::{check_table, json::Json, junit::Junit, markdown::Markdown, Exporter};
use crate::session::runs::{self, CheckResult};
use crate::session::Target;

pub(super) fn run(a: CheckArgs) -> Result<Exit> {
    let base = Baseline::read(&a.baseline)?;
    let settings = settings(&a, &base)?;
    for out in [&a.junit, &a.markdown, &a.json].into_iter().flatten() {
        if out.as_os_str() != "-" {
            crate::files::check_writable(out)?;
        }
    }
    let mut opts = run_options(&a.run, false, 0)?;
    let target = target(&a, &base, opts.follow)?;
    opts.stdout = crate::run::Stdout::Stderr;
    let benchmark = a
        .baseline
        .file_stem()
        .map_or_else(|| "benchmark".into(), |s| s.to_string_lossy().into_owned());
    let same_binary = base.build_id.is_some() && base.build_id == target.plan.build_id;
    status(&format!(
        "checking {} against {} ({} base runs{}), {} runs first, up to {}",
        shown(&target.program),
        shown(&a.baseline),
        base.runs,
        if same_binary { ", same build-id" } else { "" },
        settings.runs,
        settings.max_runs
    ));
    let CheckResult {
        comparison: mut c,
        head,
    } = runs::check(
        &target,
        &opts,
        &base,
        &settings,
        &benchmark,
        &mut RunProgress::new(settings.runs),
    )
    .with_context(|| format!("checking against {}", shown(&a.baseline)))?;
    if let Some(w) = busy_machine_warning() {
        c.warnings.push(w);
    }
    write_reports(&a, &c)?;
    if a.update {
        let mut b = Baseline::from_runs(
            target.command(),
            target.plan.build_id.clone(),
            Machine::current(),
            base.gate.clone(),
            &base.selection(),
            &head,
        );
        b.keep_overrides_of(&base);
        b.write(&a.baseline)?;
        status(&format!(
            "updated {} with {} runs",
            shown(&a.baseline),
            head.len()
        ));
        return Ok(Exit::Ok);
    }
    Ok(if c.passed() {
        Exit::Ok
    } else {
        Exit::Regression
    })
}

/// The settings in force: defaults, then the baseline's `[gate]`, then the command line.
fn settings(a: &CheckArgs, base: &Baseline) -> Result<GateSettings> {
    let mut settings = GateSettings {
        runs: base.runs.min(10),
        ..GateSettings::default()
    };
    base.gate.apply(&mut settings);
    overrides(&a.gate).apply(&mut settings);
    if let Some(r) = a.runs {
        settings.runs = r;
    }
    if let Some(m) = a.max_runs {
        settings.max_runs = m;
    }
    validate_settings(&settings)?;
    settings.max_runs = settings.max_runs.max(settings.runs);
    Ok(settings)
}

/// The command to run (the baseline's, or the one after `--`), planned with the baseline's selection;
/// refused before any run when it shares no function with the baseline.
fn target(a: &CheckArgs, base: &Baseline, follow: bool) -> Result<Target> {
    let argv: Vec<OsString> = if a.command.is_empty() {
        base.command.iter().map(OsString::from).collect()
    } else {
        a.command.clone()
    };
    let target = Target::for_run(&argv, &base.selection(), follow).with_context(|| {
        if a.command.is_empty() {
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
            shown(&a.baseline)
        );
    }
    Ok(target)
}

/// The terminal table (on stderr when a report goes to stdout, so the two do not mix) and every
/// report file asked for.
fn write_reports(a: &CheckArgs, c: &Comparison) -> Result<()> {
    let to_stdout = [&a.junit, &a.markdown, &a.json]
        .into_iter()
        .flatten()
        .any(|p| p.as_os_str() == "-");
    if to_stdout {
        eprint!("{}", check_table::table(c, false));
    } else {
        print!("{}", check_table::table(c, false));
    }
    let formats: [(&Option<std::path::PathBuf>, &dyn Exporter); 3] = [
        (&a.junit, &Junit),
        (&a.markdown, &Markdown),
        (&a.json, &Json),
    ];
    for (path, exporter) in formats {
        if let Some(p) = path {
            write_report(p, &exporter.render(c)?)?;
        }
    }
    Ok(())
}

/// A warning when the machine was busier than its cores during the check (other work skews timings).
fn busy_machine_warning() -> Option<String> {
    let load = Machine::load_average()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    (load > cores).then(|| {
        format!("the machine was busy during the check (load average {load:.1} on {cores} cores): timings are noisier")
    })
}
