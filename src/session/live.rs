//! Tracing a process that is already running (`record --pid PID [--duration D]`): plan its executable
//! and the libraries it has mapped, attach with its PID, trace its threads and the libraries it loads
//! (the tracer holds the thread in dlopen, as for a benchmark), until the duration ends, a stop signal
//! comes or the process exits; then leave it running as it was.
//!
//! What the process sees: its threads are ptrace-seized (`TracerPid` is perfgate's tracer) while
//! perfgate records, signals take the tracer's detour, and probes cost what they cost; after the
//! detach nothing of perfgate is left in it: no tracer, no probe (a return probe still pending returns
//! through the kernel's trampoline as usual).
//!
//! Invariants: perfgate never kills or stops a live process; it leaves it even on an error after the
//! attach (the tracer detaches when its socket closes, without `PTRACE_O_EXITKILL`); calls in progress
//! at the attach are never counted as losses (`returned_before_attach`), calls in progress at the detach
//! are counted as such (`open_at_detach`).
use std::ffi::OsString;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use super::follow::{Follow, Mode, SharedPlanCache};
use super::RunOptions;
use crate::bpf::{Features, Measured, ModeUnsupported, ProbeMode, Program, ProgramConfig};
use crate::plan::{self, FileIdentity, Plan, Selection};
use crate::profile::file::{Event, Header};
use crate::profile::{ExitInfo, Machine, Profile, PROFILE_SCHEMA};
use crate::run::follow::Tracer;

/// How often the loop looks at the clock, the stop signals and the tracer.
const POLL: Duration = Duration::from_millis(10);

/// A running process, planned.
#[derive(Debug, Clone)]
pub struct LiveTarget {
    /// The process.
    pub pid: u32,
    /// Its executable (`/proc/PID/exe` when the file was deleted or replaced since it started).
    pub exe: PathBuf,
    /// Its command line.
    pub command: Vec<String>,
    /// The executable's plan (its libraries are planned from what it maps, when attaching).
    pub plan: Plan,
    /// The selection.
    pub selection: Selection,
    cache: SharedPlanCache,
}

impl LiveTarget {
    /// Plans process `pid`: one-line errors when it does not exist, is perfgate, or cannot be read.
    pub fn new(pid: u32, sel: &Selection) -> Result<LiveTarget> {
        if pid == 0 || pid == crate::sys::pid() {
            bail!("--pid {pid}: not a process perfgate can trace");
        }
        let proc_exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let target = std::fs::read_link(&proc_exe).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!("--pid {pid}: no such process"),
            _ => anyhow::anyhow!("--pid {pid}: cannot read its executable ({e})"),
        })?;
        // A file deleted or rebuilt since the process started is reached through /proc.
        let exe = if FileIdentity::of(&target).is_some()
            && FileIdentity::of(&target) == FileIdentity::of(&proc_exe)
        {
            target
        } else {
            proc_exe
        };
        let plan = plan::executable(&exe, sel)
            .with_context(|| format!("--pid {pid}: {}", exe.display()))?;
        if plan.can_unwind() == plan::Unwinds::Exceptions && !plan.functions.is_empty() {
            bail!(
                "--pid {pid}: {} is C++ code, which throws exceptions through \
                 traced calls, and perfgate restores return addresses for the unwinder only in a process \
                 it starts: run the benchmark under perfgate instead",
                exe.display()
            );
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let command = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| {
                OsString::from_vec(a.to_vec())
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        Ok(LiveTarget {
            pid,
            exe,
            command,
            plan,
            selection: sel.clone(),
            cache: SharedPlanCache::default(),
        })
    }

    /// The BPF program's settings for tracing it with probe interface `mode`; `holds`: the tracer holds
    /// its threads in dlopen.
    fn program_config(&self, opts: &RunOptions, mode: ProbeMode, holds: bool) -> ProgramConfig {
        ProgramConfig {
            target_pid: self.pid,
            events: opts.trace.events,
            ringbuf_bytes: opts.trace.ringbuf_bytes,
            mode,
            probe_cost: opts.trace.probe_cost,
            r_debug_delta: self
                .plan
                .loader_hook
                .as_ref()
                .map_or(0, |h| h.r_debug_delta),
            functions: self.plan.functions.len(),
            survey: false,
            count_only: false,
            bpf_writes: opts.trace.bpf_writes,
            follow: true,
            hold_dlopen: holds,
        }
    }

    /// The header of a recording of it.
    pub fn header(&self) -> Header {
        Header {
            command: self.command.clone(),
            started_at: now_secs(),
            functions: self.plan.functions.clone(),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What attaching found, for the status line.
#[derive(Debug, Clone, Copy)]
pub struct Attached {
    /// Functions with a probe (libraries included).
    pub functions: usize,
    /// Files attached.
    pub files: usize,
    /// Threads seized (0: ptrace refused; then libraries it loads are not held).
    pub threads: u32,
}

/// How a live recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveEnd {
    /// The duration ended.
    Duration,
    /// A stop signal (Ctrl-C) came.
    Stopped,
    /// The process exited.
    Exited(Option<ExitInfo>),
}

/// Traces the live process until `duration`, a stop signal or its exit; `on_attached` hears when the
/// probes are in. The profile's exit is the process's if it exited, unknown otherwise. The order of
/// release after the recording (holds off, ptrace off, links off) is the point of keeping the steps here.
pub fn trace_live(
    t: &LiveTarget,
    opts: &RunOptions,
    duration: Option<Duration>,
    on_attached: &mut dyn FnMut(&Attached),
    on_event: &mut dyn FnMut(&Event) -> Result<()>,
) -> Result<(Profile, LiveEnd)> {
    crate::bpf::check_privileges()?;
    crate::run::signals::install();
    let started_at = now_secs();
    let mut notes = Vec::new();
    let mut tracer = Tracer::start()?;
    let threads = match tracer.seize_live(t.pid) {
        Ok(n) => n,
        Err(e) => {
            notes.push(format!(
                "libraries it loads are not traced and its threads not followed: {e:#}"
            ));
            0
        }
    };
    let holds = threads > 0 && !t.selection.libs.is_empty();
    let mut storages: [MaybeUninit<libbpf_rs::OpenObject>; 3] = [
        MaybeUninit::uninit(),
        MaybeUninit::uninit(),
        MaybeUninit::uninit(),
    ];
    let config = |mode| t.program_config(opts, mode, holds);
    let mut program = load_program(config, opts.trace.probes, &mut storages)?;
    let mut follow = Follow::new(tracer, Mode::Live, &t.selection, t.cache.clone(), holds);
    let t0 = Instant::now();
    follow.seed_live(&program, t.pid, &t.exe, &t.plan)?;
    program.attach_thread_exit()?;
    let attach = t0.elapsed();
    if threads > 0 {
        // The calls in progress now began before the probes: each thread's stack says which.
        follow.sample_threads(&program)?;
    }
    on_attached(&Attached {
        functions: follow.functions_planned(),
        files: follow.files_attached(),
        threads,
    });
    let recording = Instant::now();
    let end = record_until(
        &mut follow,
        &mut program,
        t.pid,
        threads,
        duration,
        on_event,
    )?;
    let wall = recording.elapsed();
    if !matches!(end, LiveEnd::Exited(_)) {
        follow.detach_live(&program, t.pid)?;
    }
    program.drain_events(on_event)?;
    let outcome = follow.finish(&program);
    program.detach();
    let mut measured = program.measured()?;
    measured.lost.open_at_detach = program.open_frames();
    measured.attach += attach;
    let exit = match end {
        LiveEnd::Exited(Some(e)) => e,
        _ => ExitInfo::default(),
    };
    let mut profile = live_profile(t, opts, started_at, wall, exit, measured, notes);
    outcome.apply(&mut profile);
    if profile.functions.is_empty() {
        bail!(
            "--pid {}: no function matched the filters (see --function, --lib)",
            t.pid
        );
    }
    Ok((profile, end))
}

/// The program loaded with the probe interface `chosen` or, when none was chosen, the newest this
/// kernel has: the kernel refusing an interface shows at load, and the next older one is tried, as for
/// a benchmark (one object storage per attempt, each living as long as the program loaded in it).
fn load_program<'obj>(
    config: impl Fn(ProbeMode) -> ProgramConfig,
    chosen: Option<ProbeMode>,
    storages: &'obj mut [MaybeUninit<libbpf_rs::OpenObject>; 3],
) -> Result<Program<'obj>> {
    let mut mode = Some(chosen.unwrap_or_else(|| Features::detect().best_mode()));
    for storage in storages.iter_mut() {
        let Some(m) = mode else { break };
        match Program::load(&config(m), storage) {
            Err(e) if e.downcast_ref::<ModeUnsupported>().is_some() && chosen.is_none() => {
                mode = m.fallback();
                if mode.is_none() {
                    return Err(e);
                }
            }
            r => return r,
        }
    }
    bail!("no probe interface of this kernel could be loaded");
}

/// Serves the following and hands on the events until `duration` has passed, a stop signal comes or
/// the process exits (or is exiting, when its threads could not be seized).
fn record_until(
    follow: &mut Follow,
    program: &mut Program<'_>,
    pid: u32,
    threads: u32,
    duration: Option<Duration>,
    on_event: &mut dyn FnMut(&Event) -> Result<()>,
) -> Result<LiveEnd> {
    let recording = Instant::now();
    loop {
        if duration.is_some_and(|d| recording.elapsed() >= d) {
            return Ok(LiveEnd::Duration);
        }
        if crate::run::signals::stop_requested().is_some() {
            return Ok(LiveEnd::Stopped);
        }
        if let Some(exit) = follow.exit_of(pid) {
            return Ok(LiveEnd::Exited(Some(exit)));
        }
        if follow.running() == 0 || (threads == 0 && crate::run::tree::exiting(pid)) {
            return Ok(LiveEnd::Exited(None));
        }
        follow.serve(program, POLL)?;
        program.poll_events(Duration::ZERO, on_event)?;
    }
}

/// The profile of the recording before the following's outcome is put in (functions, files).
fn live_profile(
    t: &LiveTarget,
    opts: &RunOptions,
    started_at: u64,
    wall: Duration,
    exit: ExitInfo,
    measured: Measured,
    warnings: Vec<String>,
) -> Profile {
    Profile {
        schema: PROFILE_SCHEMA,
        perfgate_version: env!("CARGO_PKG_VERSION").into(),
        command: t.command.clone(),
        binary: t.exe.clone(),
        build_id: t.plan.build_id.clone(),
        machine: Machine::current(),
        started_at,
        wall_ns: wall.as_nanos() as u64,
        exit,
        functions: Vec::new(),
        accounting: super::measured_accounting(&measured, warnings, opts.trace.probe_cost),
        stats: measured.stats,
        has_events: opts.trace.events,
    }
}
