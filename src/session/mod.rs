//! Sessions: the only layer that joins processes and probes. One traced run (spawn held → attach →
//! release → wait, with events and dlopen sampling → detach → profile) is [`trace_once`] /
//! [`trace_with_events`] (see `trace.rs`); repeated runs and the gate's sequential checks are in
//! `runs.rs`; the probe-cost calibration in `calibrate.rs`.
//!
//! Invariant: nothing here prints or reads the terminal; what the user should hear is returned (warnings
//! in the profile, errors) or reported through a [`runs::Observer`].
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};

use crate::bpf::Measured;
use crate::plan::{self, Plan, Selection};
use crate::profile::file::{Event, Header};
use crate::profile::{Accounting, Machine, ProbeCosts, Profile, TracedFile, PROFILE_SCHEMA};
use crate::run::{self, Finished, RunAs};

pub mod calibrate;
mod follow;
pub mod live;
pub mod runs;
pub mod survey;
mod trace;
mod unwind;
mod walk;

pub use follow::{PlanCache, SharedPlanCache};

/// A command ready to trace: its executable resolved and its probe plan made.
#[derive(Debug, Clone)]
pub struct Target {
    /// argv as given.
    pub argv: Vec<OsString>,
    /// The executable.
    pub program: PathBuf,
    /// The plan.
    pub plan: Plan,
    /// The selection it was planned with (followed processes are planned with it too).
    pub selection: Selection,
    /// Plans of the files followed processes run or load, kept across this target's runs.
    pub plan_cache: SharedPlanCache,
}

impl Target {
    /// Resolves `argv[0]` and plans the probes; every bad input is a one-line error.
    pub fn new(argv: &[OsString], sel: &Selection) -> Result<Target> {
        Target::planned(argv, sel, |program| Ok(plan::build(program, sel)?))
    }

    /// A command for a run that follows the processes it starts: a script is accepted (its interpreter
    /// is planned when it execs), and so is a command none of whose own functions is selected (a shell
    /// wrapper: what it runs is).
    pub fn following(argv: &[OsString], sel: &Selection) -> Result<Target> {
        Target::planned(argv, sel, |program| {
            if is_script(program) {
                Ok(Plan {
                    program: program.to_path_buf(),
                    ..Plan::default()
                })
            } else {
                Ok(plan::build_lenient(program, sel)?)
            }
        })
    }

    /// The command with `argv[0]` resolved and planned by `plan_of`.
    fn planned(
        argv: &[OsString],
        sel: &Selection,
        plan_of: impl FnOnce(&std::path::Path) -> Result<Plan>,
    ) -> Result<Target> {
        let Some(first) = argv.first() else {
            bail!(
                "no command given: put the benchmark after `--`, e.g. perfgate record -- ./bench"
            );
        };
        let program = run::resolve_program(first)?;
        let plan = plan_of(&program)?;
        Ok(Target {
            argv: argv.to_vec(),
            program,
            plan,
            selection: sel.clone(),
            plan_cache: SharedPlanCache::default(),
        })
    }

    /// [`Target::following`] when the run follows processes, [`Target::new`] otherwise (a script is
    /// then refused, with the way out).
    pub fn for_run(argv: &[OsString], sel: &Selection, follow: bool) -> Result<Target> {
        if follow {
            return Target::following(argv, sel);
        }
        let target = Target::new(argv, sel);
        if target.is_err() {
            if let Some(p) = argv.first().and_then(|a| run::resolve_program(a).ok()) {
                if is_script(&p) {
                    bail!(
                        "{}: a script; with --no-follow only the command's own process is traced (leave --no-follow out to trace the programs it runs)",
                        p.display()
                    );
                }
            }
        }
        target
    }

    /// The command as strings, for reports and baselines.
    pub fn command(&self) -> Vec<String> {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

/// Whether the file starts with `#!`: the kernel runs its interpreter instead.
fn is_script(p: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 2];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"#!"
}

/// Settings of the tracing itself.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Stream entry/exit events (trace mode) besides the in-kernel aggregation.
    pub events: bool,
    /// Ring buffer size in bytes (power of two, at least a page); trace mode only.
    pub ringbuf_bytes: u32,
    /// The probe interface; `None` picks the newest the kernel has and falls back on refusal.
    pub probes: Option<crate::bpf::ProbeMode>,
    /// Kill the benchmark after this long.
    pub timeout: Option<Duration>,
    /// Calibrated cost of one traced call per probe kind (see [`ProbeCosts`]); `None` = not compensated.
    pub probe_cost: Option<ProbeCosts>,
    /// `perfgate bench cost` only: attach the minimal counting program instead of perfgate's (the
    /// profile then holds no statistics, only `accounting.count_hits`).
    pub count_only: bool,
    /// Let the BPF program store return addresses around exceptions itself when the kernel allows
    /// `bpf_probe_write_user`; false (or a kernel that refuses it): the benchmark is paused for perfgate
    /// to store them.
    pub bpf_writes: bool,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            events: false,
            ringbuf_bytes: 64 << 20,
            probes: None,
            timeout: None,
            probe_cost: None,
            count_only: false,
            bpf_writes: true,
        }
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
    /// Follow the processes the benchmark starts (held at exec and fork, attached with their own PID).
    pub follow: bool,
}

/// One run of the target without any probe, as the benchmark runs alone (held and released the same
/// way, so the only difference is the tracing): its wall time from release to exit.
pub fn untraced_once(target: &Target, opts: &RunOptions) -> Result<Duration> {
    let mut child =
        run::HeldChild::spawn(&target.program, &target.argv, opts.run_as, &opts.stdout)?;
    child.release()?;
    let deadline = opts.trace.timeout.map(|t| std::time::Instant::now() + t);
    loop {
        if let Some(f) = child.try_wait(deadline)? {
            if let Some(stop) = f.stopped {
                bail!("stopped by {} during the untraced run", stop.name());
            }
            if !f.exit.success() {
                bail!("the benchmark failed untraced ({})", f.exit);
            }
            return Ok(f.wall);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
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
    crate::bpf::check_privileges()?;
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let trace::Traced {
        measured,
        finished,
        mapped,
        follow,
        notes,
    } = trace::run(target, opts, on_event)?;
    let mut profile = assemble(
        opts.trace.probe_cost,
        target,
        started_at,
        measured,
        finished,
        &mapped,
        opts.trace.events,
        follow.is_some(),
    );
    profile.accounting.warnings.extend(notes);
    if let Some(f) = follow {
        f.apply(&mut profile);
        if profile.functions.is_empty() {
            let why: Vec<String> = profile
                .accounting
                .processes
                .iter()
                .flat_map(|p| &p.not_traced)
                .map(|n| format!("{} ×{}", n.reason, n.count))
                .collect();
            if why.is_empty() {
                bail!(
                    "no function matched the filters in any process the command ran (see --function, --lib)"
                );
            }
            bail!(
                "no function traced in any process the command ran (see --function, --lib); not traced: {}",
                why.join("; ")
            );
        }
    }
    Ok(profile)
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

#[allow(clippy::too_many_arguments)]
fn assemble(
    probe_cost: Option<ProbeCosts>,
    target: &Target,
    started_at: u64,
    m: Measured,
    f: Finished,
    mapped: &[PathBuf],
    has_events: bool,
    followed: bool,
) -> Profile {
    let plan = &target.plan;
    let measured = measured_accounting(&m, run_warnings(plan, &m, &f), probe_cost);
    Profile {
        schema: PROFILE_SCHEMA,
        perfgate_version: env!("CARGO_PKG_VERSION").into(),
        command: target.command(),
        binary: target.program.clone(),
        build_id: plan.build_id.clone(),
        machine: Machine::current(),
        started_at,
        wall_ns: f.wall.as_nanos() as u64,
        exit: f.exit,
        functions: plan.functions.clone(),
        stats: m.stats,
        accounting: Accounting {
            files: traced_files(plan),
            skipped: plan.skipped.clone(),
            skipped_names: plan.skipped_names.clone(),
            libraries_not_found: plan.libraries_not_found.clone(),
            debug_files: plan.debug_files.clone(),
            // Following, the loader hook tells start-up from dlopen per process (`follow.rs`); the
            // global list of link-map names would count every child's start-up libraries.
            libraries_loaded_later: if followed {
                loaded_later(plan, mapped, &[])
            } else {
                loaded_later(plan, mapped, &m.loader_paths)
            },
            count_hits: m.count_hits,
            unwinding: crate::profile::Unwinding {
                switchers_used: plan.switchers_used.clone(),
                ..m.unwinding
            },
            ..measured
        },
        has_events,
    }
}

/// The accounting of what the BPF program measured (losses, the probe interface, attach and detach
/// times), with `warnings` and the calibrated `probe_cost`; what the run followed and planned is the
/// caller's to add.
fn measured_accounting(
    m: &Measured,
    warnings: Vec<String>,
    probe_cost: Option<ProbeCosts>,
) -> Accounting {
    Accounting {
        lost: m.lost.clone(),
        session_probes: m.mode == crate::bpf::ProbeMode::Session,
        probe_mode: Some(m.mode.name().to_string()),
        warnings,
        attach_ns: m.attach.as_nanos() as u64,
        detach_ns: m.detach.as_nanos() as u64,
        probe_cost,
        ..Accounting::default()
    }
}

/// The plan's warnings, then what the run itself warns of: the timeout, slow classic probes, a stop.
fn run_warnings(plan: &Plan, m: &Measured, f: &Finished) -> Vec<String> {
    let mut warnings = plan.warnings.clone();
    if f.timed_out {
        warnings.push(format!(
            "the benchmark was killed by the timeout after {}",
            secs(f.wall)
        ));
    }
    if m.mode == crate::bpf::ProbeMode::Classic {
        warnings.push(format!(
            "classic uprobes (two perf events per function, for kernels before 6.6 or --probes classic): \
             attach took {}, detach {} for {} functions; uprobe_multi (Linux 6.6+) does it in milliseconds",
            secs(m.attach),
            secs(m.detach),
            plan.functions.len()
        ));
    }
    if let Some(stop) = f.stopped {
        warnings.push(format!(
            "stopped by {}: the profile covers the run up to that point",
            stop.name()
        ));
    }
    warnings
}

/// The files of the plan with their probe counts.
fn traced_files(plan: &Plan) -> Vec<TracedFile> {
    plan.files
        .iter()
        .map(|p| TracedFile {
            path: p.path.clone(),
            build_id: p.build_id.clone(),
            functions: p.probes.len() as u64,
        })
        .collect()
}

/// Files the benchmark mapped (sampled) or its loader listed that are neither the program nor a library
/// the loader maps at start-up.
fn loaded_later(plan: &Plan, mapped: &[PathBuf], loader_paths: &[PathBuf]) -> Vec<PathBuf> {
    let canon = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let known: std::collections::BTreeSet<PathBuf> = plan
        .known_libraries
        .iter()
        .chain(std::iter::once(&plan.program))
        .map(canon)
        .collect();
    // Entries without a directory in the link map (the vDSO, the program itself) are not files.
    let listed = loader_paths
        .iter()
        .filter(|p| p.is_absolute() || p.to_string_lossy().contains('/'));
    let mut later: Vec<PathBuf> = mapped
        .iter()
        .chain(listed)
        .filter(|p| !known.contains(&canon(p)))
        .cloned()
        .collect();
    later.sort();
    later.dedup();
    later
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
