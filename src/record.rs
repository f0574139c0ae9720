//! One traced run from start to finish: resolve the command, plan the probes, spawn held, trace, and
//! assemble the [`Profile`]. Used by `record` and, N times over, by the gate.
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};

use crate::bpf::{self, Measured, TraceOptions};
use crate::plan::{self, Plan, Selection};
use crate::profile::file::{Event, Header};
use crate::profile::{Accounting, Machine, Profile, TracedFile, PROFILE_SCHEMA};
use crate::run::{self, Finished, HeldChild, RunAs};

/// A command ready to trace: its executable resolved and its probe plan made.
#[derive(Debug, Clone)]
pub struct Target {
    /// argv as given.
    pub argv: Vec<OsString>,
    /// The executable.
    pub program: PathBuf,
    /// The plan.
    pub plan: Plan,
}

impl Target {
    /// Resolves `argv[0]` and plans the probes; every bad input is a one-line error.
    pub fn new(argv: &[OsString], sel: &Selection) -> Result<Target> {
        let Some(first) = argv.first() else {
            bail!(
                "no command given: put the benchmark after `--`, e.g. perfgate record -- ./bench"
            );
        };
        let program = run::resolve_program(first)?;
        let plan = plan::build(&program, sel)?;
        Ok(Target {
            argv: argv.to_vec(),
            program,
            plan,
        })
    }

    /// The command as strings, for reports and baselines.
    pub fn command(&self) -> Vec<String> {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Kernel-side settings.
    pub trace: TraceOptions,
    /// Whom the benchmark runs as.
    pub run_as: RunAs,
    /// Where the benchmark's stdout goes.
    pub stdout: run::Stdout,
}

/// Traces one run of the target without an event stream.
pub fn trace_once(target: &Target, opts: &RunOptions) -> Result<Profile> {
    trace_with_events(target, opts, &mut |_| Ok(()))
}

/// Traces one run of the target; in trace mode `on_event` receives every event as it arrives.
pub fn trace_with_events(
    target: &Target,
    opts: &RunOptions,
    on_event: &mut dyn FnMut(&Event) -> Result<()>,
) -> Result<Profile> {
    bpf::check_privileges()?;
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut child = HeldChild::spawn(&target.program, &target.argv, opts.run_as, &opts.stdout)?;
    let (measured, finished) = bpf::trace(&target.plan, &mut child, &opts.trace, on_event)?;
    Ok(assemble(
        opts.trace.probe_cost,
        target,
        started_at,
        measured,
        finished,
        opts.trace.events,
    ))
}

/// The header of a recording file for this target.
pub fn header(target: &Target) -> Header {
    Header {
        command: target.command(),
        started_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        functions: target.plan.functions.clone(),
    }
}

fn assemble(
    probe_cost: Option<crate::profile::ProbeCosts>,
    target: &Target,
    started_at: u64,
    m: Measured,
    f: Finished,
    has_events: bool,
) -> Profile {
    let plan = &target.plan;
    let mut warnings = plan.warnings.clone();
    if f.timed_out {
        warnings.push(format!(
            "the benchmark was killed by the timeout after {}",
            secs(f.wall)
        ));
    }
    if run::interrupted() {
        warnings.push("interrupted by Ctrl-C: the profile covers the run up to that point".into());
    }
    Profile {
        schema: PROFILE_SCHEMA,
        perfgate_version: env!("CARGO_PKG_VERSION").into(),
        command: target.command(),
        binary: target.program.display().to_string(),
        build_id: plan.build_id.clone(),
        machine: Machine::current(),
        started_at,
        wall_ns: f.wall.as_nanos() as u64,
        exit: f.exit,
        functions: plan.functions.clone(),
        stats: m.stats,
        accounting: Accounting {
            files: plan
                .files
                .iter()
                .map(|p| TracedFile {
                    path: p.path.display().to_string(),
                    build_id: p.build_id.clone(),
                    functions: p.ids.len() as u64,
                })
                .collect(),
            skipped: plan.skipped.clone(),
            skipped_names: plan.skipped_names.clone(),
            libraries_not_found: plan.libraries_not_found.clone(),
            libraries_loaded_later: loaded_later(plan, &m.mapped),
            lost: m.lost,
            session_probes: m.session,
            warnings,
            attach_ns: m.attach_ns,
            detach_ns: m.detach_ns,
            probe_cost,
        },
        has_events,
    }
}

/// Mapped files that are neither the program nor a library the loader maps at start-up.
fn loaded_later(plan: &Plan, mapped: &[PathBuf]) -> Vec<String> {
    let canon = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let known: std::collections::BTreeSet<PathBuf> = plan
        .known_libraries
        .iter()
        .chain(std::iter::once(&plan.program))
        .map(canon)
        .collect();
    mapped
        .iter()
        .filter(|p| !known.contains(&canon(p)))
        .map(|p| p.display().to_string())
        .collect()
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
