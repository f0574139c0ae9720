//! `perfgate record`: one traced run, its table, and the recording file.
use std::io::IsTerminal;

use anyhow::{bail, Result};

use super::{run_options, selection, shown, status, Exit};
use crate::cli::RecordArgs;
use crate::profile::file::Writer;
use crate::report::summary::{self, SummaryOptions};
use crate::report::units::{count, plural};
use crate::session::live::{trace_live, LiveEnd, LiveTarget};
use crate::session::{self, calibrate, Target};

pub(super) fn run(a: RecordArgs) -> Result<Exit> {
    if let Some(pid) = a.pid {
        return live(&a, pid);
    }
    let mut opts = run_options(&a.run, a.trace, a.buffer_size)?;
    let target = Target::for_run(&a.command, &selection(&a.select), opts.follow)?;
    let mut writer = Writer::create(&a.output, &session::header(&target))?;
    if !a.no_calibrate {
        super::calibrate(&mut opts)?;
    }
    let target = match a.budget {
        Some(_) if a.no_calibrate => {
            bail!("--budget needs the probe cost calibrated: leave out --no-calibrate")
        }
        Some(budget) => {
            let t = super::surveyed(&target, &opts, budget)?;
            writer = Writer::create(&a.output, &session::header(&t))?;
            t
        }
        None => target,
    };
    status(&format!(
        "tracing {} in {} of {}",
        plural(target.plan.functions.len(), "function"),
        plural(target.plan.files.len(), "file"),
        shown(&target.program)
    ));
    let spinner = events_spinner(a.trace);
    let profile = session::trace_with_events(&target, &opts, &mut |e| {
        writer.event(e)?;
        if writer.events() % 65_536 == 0 {
            spinner.set_position(writer.events());
        }
        Ok(())
    })?;
    spinner.finish_and_clear();
    if profile.exit.signal == Some(libc::SIGABRT) && profile.accounting.unwinding.hooks == 0 {
        status(
            "hint: perfgate found no unwinder to hook (libgcc_s, libunwind): a C++ exception thrown through a traced \
             function then aborts the program. Exclude the functions the exception passes through with --no-function",
        );
    }
    // Ctrl-C: what was measured up to then is kept (and says so), but the run did not complete.
    let interrupted = crate::run::signals::stop_requested();
    if !profile.exit.success() && !a.allow_failure && interrupted.is_none() {
        bail!(
            "the benchmark failed ({}); nothing saved (--allow-failure keeps the profile)",
            profile.exit
        );
    }
    let events = writer.events();
    writer.finish(&profile)?;
    print_table(&a, &profile);
    if let Some(stop) = interrupted {
        status(&format!(
            "stopped by {}: the profile up to then was saved to {}",
            stop.name(),
            shown(&a.output)
        ));
        return Ok(Exit::Error);
    }
    let what = if a.trace {
        format!(" with {} events", count(events))
    } else {
        String::new()
    };
    status(&format!(
        "benchmark {}; saved {}{what}",
        profile.exit,
        shown(&a.output)
    ));
    Ok(Exit::Ok)
}

/// A spinner counting recorded events, on a terminal in trace mode.
fn events_spinner(trace: bool) -> indicatif::ProgressBar {
    if !trace || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "perfgate: {spinner} {pos} events recorded, {elapsed}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn print_table(a: &RecordArgs, profile: &crate::profile::Profile) {
    super::print_stdout(&summary::table(
        profile,
        SummaryOptions {
            per_thread: a.per_thread,
            limit: a.limit,
            verbose: a.verbose,
            compensated: a.compensated,
            full_names: a.full_names,
            width: super::terminal_width(false),
        },
    ));
}

/// `record --pid`: attach to a running process, record until --duration, Ctrl-C or its exit, detach.
fn live(a: &RecordArgs, pid: u32) -> Result<Exit> {
    let mut opts = run_options(&a.run, a.trace, a.buffer_size)?;
    let target = LiveTarget::new(pid, &selection(&a.select))?;
    let mut writer = Writer::create(&a.output, &target.header())?;
    if !a.no_calibrate {
        crate::bpf::check_privileges()?;
        match calibrate::calibrate(&opts.trace) {
            Ok(c) => opts.trace.probe_cost = Some(c),
            Err(e) => status(&format!(
                "warning: probe cost not calibrated: {}",
                super::one_line(&e)
            )),
        }
    }
    let spinner = events_spinner(a.trace);
    let (profile, end) = trace_live(
        &target,
        &opts,
        a.duration,
        &mut |at| {
            status(&format!(
                "attached to process {pid} ({}): {} in {}, {}; {}",
                shown(&target.exe),
                plural(at.functions, "function"),
                plural(at.files, "file"),
                plural(at.threads, "thread"),
                match a.duration {
                    Some(d) => format!("recording for {d:?} (Ctrl-C ends it sooner)"),
                    None => "recording until Ctrl-C or its exit".to_string(),
                }
            ))
        },
        &mut |e| {
            writer.event(e)?;
            if writer.events() % 65_536 == 0 {
                spinner.set_position(writer.events());
            }
            Ok(())
        },
    )?;
    spinner.finish_and_clear();
    let events = writer.events();
    writer.finish(&profile)?;
    print_table(a, &profile);
    let how = match end {
        LiveEnd::Duration => format!(
            "detached from process {pid} after {:?}; it runs on",
            a.duration.unwrap_or_default()
        ),
        LiveEnd::Stopped => format!("detached from process {pid} at the stop signal; it runs on"),
        LiveEnd::Exited(Some(e)) => format!("process {pid} ended ({e})"),
        LiveEnd::Exited(None) => format!("process {pid} ended"),
    };
    let what = if a.trace {
        format!(" with {} events", count(events))
    } else {
        String::new()
    };
    status(&format!("{how}; saved {}{what}", shown(&a.output)));
    Ok(Exit::Ok)
}
