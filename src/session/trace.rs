//! One traced run: spawn the benchmark held before `exec`, load the BPF program with its PID, attach every
//! planned file, release the benchmark, wait for it while streaming events and noticing libraries it maps,
//! detach, read what the kernel measured.
//!
//! Invariants: the benchmark runs no instruction of its own image before every probe is attached (it is
//! held until [`HeldChild::release`]); the links are closed only after the benchmark has exited or been
//! killed (a pending return probe would otherwise keep the close waiting, see DESIGN.md); and a held or
//! running benchmark never outlives an error here ([`HeldChild`]'s drop kills it).
use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::follow::{self, Follow};
use super::{unwind, RunOptions, Target};
use crate::bpf::{Features, Measured, ModeUnsupported, ProbeMode, Program, ProgramConfig};
use crate::profile::file::Event;
use crate::run::{Finished, HeldChild};

/// How often `/proc/PID/maps` is sampled for libraries loaded with dlopen (the loader hook is the main
/// source; sampling covers loaders without it).
const MAPS_EVERY: Duration = Duration::from_millis(10);
/// How long one wait for events (or, in gate mode, for the exit) lasts.
const POLL: Duration = Duration::from_millis(10);
const POLL_GATE_MODE: Duration = Duration::from_millis(2);

/// What one run gives.
pub(super) struct Traced {
    pub(super) measured: Measured,
    pub(super) finished: Finished,
    /// Executable files the benchmark had mapped while it ran (sampled).
    pub(super) mapped: Vec<PathBuf>,
    /// What following the benchmark's processes and libraries learnt (`None`: not followed).
    pub(super) follow: Option<follow::Outcome>,
    /// Why following was off although asked for.
    pub(super) notes: Vec<String>,
}

/// Called every [`TICK`] while a surveyed benchmark runs, with the program to read and relink.
pub(super) type TickFn<'t> = dyn FnMut(&mut Program<'_>) -> Result<()> + 't;

/// How often a survey looks at its totals: a function found too hot keeps costing until the next look
/// and its relink (a few ms for one group), so looking every 5 ms instead of 20 shortened the sqlite
/// fixture's survey by ~10%, and every 2 ms (with single-stepped functions judged after 0.3 ms of probes
/// instead of 1 ms) took a little more off the probe cost its hot functions ran up before they were
/// dropped; a look itself reads three counters per function from a memory map.
pub(super) const TICK: Duration = Duration::from_millis(2);

/// Traces one run with the probe interface asked for, or the newest the kernel has, falling back to
/// the next older one (session → multi → classic) when the kernel refuses it, with the same held child.
pub(super) fn run(
    target: &Target,
    opts: &RunOptions,
    on_event: &mut dyn FnMut(&Event) -> Result<()>,
) -> Result<Traced> {
    run_hooked(target, opts, on_event, None)
}

/// [`run`] with a survey's tick (survey mode: the program keeps totals the tick reads). A surveyed run
/// does not follow other processes (the survey relinks the command's own process only).
pub(super) fn run_hooked<'t>(
    target: &Target,
    opts: &RunOptions,
    on_event: &mut dyn FnMut(&Event) -> Result<()>,
    mut tick: Option<&mut TickFn<'t>>,
) -> Result<Traced> {
    if tick.is_some() && opts.follow {
        anyhow::bail!("internal: a surveyed run cannot follow processes");
    }
    // The tracer starts before the holder, so that the holder's orphan reaping spares it. A surveyed run
    // has none: its tick relinks the command's own files, and a library it loads with dlopen stays
    // unsurveyed (never called there, so it stays probed).
    let mut start = if tick.is_some() {
        follow::Start::off()
    } else {
        follow::Start::new(target, opts.follow)
    };
    let mut child = HeldChild::spawn(&target.program, &target.argv, opts.run_as, &opts.stdout)?;
    start.seize(&mut child);
    let mut mode = opts
        .trace
        .probes
        .unwrap_or_else(|| Features::detect().best_mode());
    loop {
        match run_with(
            target,
            opts,
            &mut child,
            &mut start,
            mode,
            on_event,
            tick.as_deref_mut(),
        ) {
            Err(e) if e.downcast_ref::<ModeUnsupported>().is_some() => {
                match (opts.trace.probes, mode.fallback()) {
                    (None, Some(next)) => mode = next,
                    (Some(asked), _) => {
                        return Err(e).with_context(|| {
                            format!("--probes {}: the kernel refused it", asked.name())
                        })
                    }
                    (None, None) => return Err(e),
                }
            }
            r => return r,
        }
    }
}

fn run_with<'t>(
    target: &Target,
    opts: &RunOptions,
    child: &mut HeldChild,
    start: &mut follow::Start,
    mode: ProbeMode,
    on_event: &mut dyn FnMut(&Event) -> Result<()>,
    tick: Option<&mut TickFn<'t>>,
) -> Result<Traced> {
    let plan = &target.plan;
    let config = program_config(target, opts, child.pid(), start, mode, tick.is_some());
    let mut storage = MaybeUninit::uninit();
    let mut program = Program::load(&config, &mut storage)?;
    let mut following = None;
    if start.follows() {
        following = Some(start.begin(target, &mut program, child.pid())?);
    } else {
        for file in &plan.files {
            file.check_unchanged()?;
            program.attach_functions(&file.path, &follow::probes_of(plan, file))?;
        }
        // Best effort: without the loader hook, sampling /proc/PID/maps still notices most dlopen'd
        // libraries.
        if let Some(hook) = &plan.loader_hook {
            program.attach_loader_hook(&hook.path, hook.offset);
        }
    }
    for file in &plan.stack_hooks {
        file.check_unchanged()?;
        program.attach_stack_hooks(&file.path, &unwind::bpf_hooks(file))?;
    }
    program.attach_thread_exit()?;

    // The stop writer waits for the benchmark's stops from before its first instruction.
    let writer = match program.slot_queue()? {
        Some(queue) if !plan.stack_hooks.is_empty() => Some(
            unwind::StopWriter::start(child.pid(), queue)
                .context("starting the thread that writes return addresses")?,
        ),
        _ => None,
    };
    child.release()?;
    let (finished, mapped) = match &mut following {
        Some(f) => f.wait(
            target,
            opts.trace.timeout,
            poll(opts),
            child,
            &mut program,
            on_event,
            MAPS_EVERY,
        )?,
        None => wait(target, opts, child, &mut program, on_event, tick)?,
    };
    let pauses = writer.map(unwind::StopWriter::finish).unwrap_or_default();
    program.drain_events(on_event)?;
    // The session's links of followed processes close first (they have all exited), then the program's,
    // in the background: every process they could fire for has ended, so the maps are final.
    let outcome = following.map(|f: Follow| f.finish(&program));
    program.detach_in_background();
    let mut measured = program.measured()?;
    measured.unwinding.pauses = pauses.pauses;
    measured.unwinding.paused_ns = pauses.paused_ns;
    measured.unwinding.slot_writes_failed += pauses.failed;
    Ok(Traced {
        measured,
        finished,
        mapped,
        follow: outcome,
        notes: start.note().map(str::to_string).into_iter().collect(),
    })
}

/// The program's settings for one run of `target` in process `target_pid`.
fn program_config(
    target: &Target,
    opts: &RunOptions,
    target_pid: u32,
    start: &follow::Start,
    mode: ProbeMode,
    survey: bool,
) -> ProgramConfig {
    let plan = &target.plan;
    ProgramConfig {
        target_pid,
        events: opts.trace.events,
        ringbuf_bytes: opts.trace.ringbuf_bytes,
        mode,
        probe_cost: opts.trace.probe_cost,
        r_debug_delta: plan.loader_hook.as_ref().map_or(0, |h| h.r_debug_delta),
        functions: plan.functions.len(),
        survey,
        count_only: opts.trace.count_only,
        follow: start.follows(),
        hold_dlopen: start.holds(target),
        bpf_writes: opts.trace.bpf_writes,
    }
}

fn poll(opts: &RunOptions) -> Duration {
    if opts.trace.events {
        POLL
    } else {
        POLL_GATE_MODE
    }
}

/// Waits for the benchmark to exit (or kills it at the timeout), streaming events and sampling its maps.
fn wait<'t>(
    target: &Target,
    opts: &RunOptions,
    child: &mut HeldChild,
    program: &mut Program<'_>,
    on_event: &mut dyn FnMut(&Event) -> Result<()>,
    mut tick: Option<&mut TickFn<'t>>,
) -> Result<(Finished, Vec<PathBuf>)> {
    let deadline = opts.trace.timeout.map(|t| Instant::now() + t);
    let poll = poll(opts);
    let mut mapped = std::collections::BTreeSet::new();
    let mut last_maps: Option<Instant> = None;
    let mut last_tick = Instant::now();
    loop {
        if let Some(f) = child.try_wait(deadline)? {
            return Ok((f, mapped.into_iter().collect()));
        }
        if last_maps.is_none_or(|t| t.elapsed() >= MAPS_EVERY) {
            mapped.extend(child.mapped_files(&target.program));
            last_maps = Some(Instant::now());
        }
        program.poll_events(poll, on_event)?;
        if let Some(t) = tick.as_deref_mut() {
            if last_tick.elapsed() >= TICK {
                t(program)?;
                last_tick = Instant::now();
            }
        }
    }
}
