//! `perfgate bench`: measures perfgate itself and prints the figures, never assumes them (DESIGN.md): one
//! file per benchmark — attach and detach time (`attach.rs`), the added cost of one probe hit per kind of
//! instruction (`overhead.rs`), trace throughput (`trace.rs`), the cost of tracing real libraries and what
//! the cost-aware probe set buys (`cost.rs`), the gate's false-alarm rate and power against injected
//! slowdowns of known size (`gate.rs`), what following a benchmark's processes costs per process
//! (`follow.rs`), the cost of exceptions through traced functions (`unwind.rs`), perfgate's own peak
//! memory against the number of calls (`memory.rs`), and the quantile metrics: histogram resolution
//! against exact quantiles, false alarms and detection of tail-only and median-only changes (`tail.rs`).
//!
//! These are measurements, not timed tests: nothing here fails on a slow machine; the aims are printed beside
//! the figures. Every ratio is computed from figures measured in the same invocation.
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, ContentArrangement, Table};

use super::Exit;
use crate::cli::{BenchArgs, BenchWhat};
use crate::files::PrivateDir;
use crate::gate::baseline::{Baseline, GateOverrides};
use crate::plan::Selection;
use crate::profile::file::Writer;
use crate::profile::{Machine, Profile};
use crate::report::units::duration;
use crate::run::RunAs;
use crate::session::{self, RunOptions, Target, TraceOptions};

mod attach;
mod cost;
mod follow;
mod gate;
mod memory;
mod overhead;
mod tail;
mod trace;
mod unwind;

/// The gate's cap on runs per check, as in `perfgate check`.
const MAX_RUNS: usize = 30;
/// Traced or untraced repetitions of each measurement in the first three parts; the median is shown.
const REPEATS: usize = 3;

/// Runs the selected parts and prints one table per part on stdout; progress goes to stderr.
pub(super) fn run(a: &BenchArgs) -> Result<Exit> {
    if a.runs_per_check < 3 {
        bail!(
            "--runs-per-check {}: at least 3 runs are needed for the rank test",
            a.runs_per_check
        );
    }
    if a.runs_per_check > MAX_RUNS {
        bail!(
            "--runs-per-check {}: at most {MAX_RUNS} (the gate's cap on runs per check)",
            a.runs_per_check
        );
    }
    if a.checks == 0 {
        bail!("--checks 0: at least one check per scenario");
    }
    crate::bpf::check_privileges()?;
    let all = a.what.is_empty() || a.what.contains(&BenchWhat::All);
    let wanted = |w: BenchWhat| all || a.what.contains(&w);
    let scratch = PrivateDir::new("bench")?;
    let started = Instant::now();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "perfgate {} bench on {}",
        env!("CARGO_PKG_VERSION"),
        machine_line()
    )?;
    out.flush()?;
    type Part = fn(&BenchArgs, &PrivateDir) -> Result<String>;
    let parts: [(BenchWhat, Part); 9] = [
        (BenchWhat::Attach, attach::run),
        (BenchWhat::Follow, follow::run),
        (BenchWhat::Overhead, overhead::run),
        (BenchWhat::Trace, trace::run),
        (BenchWhat::Memory, memory::run),
        (BenchWhat::Cost, cost::run),
        (BenchWhat::Exceptions, unwind::run),
        (BenchWhat::Gate, gate::run),
        (BenchWhat::Tail, tail::run),
    ];
    for (what, part) in parts {
        if wanted(what) {
            writeln!(out)?;
            out.write_all(part(a, &scratch)?.as_bytes())?;
            out.flush()?;
        }
    }
    writeln!(
        out,
        "\nbench finished in {}",
        duration(started.elapsed().as_nanos() as f64)
    )?;
    out.flush()?;
    Ok(Exit::Ok)
}

fn machine_line() -> String {
    let m = Machine::current();
    format!("{} ({} cores), Linux {}", m.cpu_model, m.cores, m.kernel)
}

fn fixture(a: &BenchArgs, name: &str) -> Result<PathBuf> {
    let p = a.fixtures.join(name);
    if !p.is_file() {
        bail!("fixture {} not found: build the fixtures with `bash fixtures/build.sh` or pass --fixtures DIR", p.display());
    }
    Ok(p)
}

fn argv(program: &Path, args: &[&str]) -> Vec<OsString> {
    std::iter::once(program.as_os_str().to_os_string())
        .chain(args.iter().map(OsString::from))
        .collect()
}

fn only(functions: &[&str]) -> Selection {
    Selection {
        functions: functions.iter().map(|s| s.to_string()).collect(),
        ..Selection::default()
    }
}

/// Run settings of the bench's traced runs: the benchmark's stdout captured in `stdout`.
fn run_options(events: bool, stdout: &Path) -> Result<RunOptions> {
    Ok(RunOptions {
        trace: TraceOptions {
            events,
            ..TraceOptions::default()
        },
        run_as: RunAs::from_env(false)?,
        stdout: crate::run::Stdout::File(stdout.to_path_buf()),
        // The figures of the bench are of one process: the tracer would only add its start.
        follow: false,
    })
}

/// One traced run with the benchmark's stdout captured in `stdout`; a failing benchmark is an error.
fn traced(
    target: &Target,
    events: bool,
    stdout: &Path,
    writer: Option<&mut Writer>,
) -> Result<Profile> {
    let opts = run_options(events, stdout)?;
    let p = match writer {
        Some(w) => session::trace_with_events(target, &opts, &mut |e| w.event(e))?,
        None => session::trace_once(target, &opts)?,
    };
    if let Some(stop) = crate::run::signals::stop_requested() {
        bail!("stopped by {}", stop.name());
    }
    if !p.exit.success() {
        bail!(
            "`{}` failed under tracing ({})",
            target.command().join(" "),
            p.exit
        );
    }
    Ok(p)
}

/// One untraced run; returns its stdout and wall time (spawn to exit).
fn untraced(program: &Path, args: &[&str]) -> Result<(String, f64)> {
    let mut cmd = Command::new(program);
    // Under sudo the untraced runs drop privileges like the traced ones (std calls setgroups(0) first).
    if let RunAs::User { uid, gid } = RunAs::from_env(false)? {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid);
    }
    let t = Instant::now();
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let wall = t.elapsed().as_nanos() as f64;
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({})",
            program.display(),
            args.join(" "),
            out.status
        );
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), wall))
}

/// The gate's own median; NaN (printed as `-`) when there is nothing to take it of.
/// A baseline of `runs` runs of `target`, made quietly (the bench prints its own status), recording
/// `select` as what was traced.
fn quiet_baseline(
    target: &Target,
    opts: &RunOptions,
    runs: usize,
    select: &Selection,
) -> Result<Baseline> {
    let mut figures = Vec::new();
    session::runs::run_batch(
        target,
        opts,
        runs,
        runs,
        &mut figures,
        &mut session::runs::Quiet,
    )?;
    Ok(Baseline::from_runs(
        target.command(),
        target.plan.build_id.clone(),
        Machine::current(),
        GateOverrides::default(),
        select,
        &figures,
    ))
}

fn median(v: &[f64]) -> f64 {
    crate::gate::stats::median(v).unwrap_or(f64::NAN)
}

/// Like [`duration`], with two decimals below 10 ns (a bare call costs about 1.5 ns).
fn fine(ns: f64) -> String {
    if ns.is_finite() && ns.abs() < 10.0 {
        format!("{ns:.2} ns")
    } else {
        duration(ns)
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn ratio(r: f64) -> String {
    if !r.is_finite() {
        "-".into()
    } else if r >= 100.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!(
        "{part}/{whole} ({:.0}%)",
        part as f64 * 100.0 / whole as f64
    )
}

/// A table with the first `left` columns left-aligned and the rest right-aligned, its cells wrapped to fit
/// the terminal (or `$COLUMNS`); as wide as it needs in a pipe or a file.
fn table(header: &[&str], rows: Vec<Vec<String>>, left: usize) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    if let Some(w) = super::terminal_width(false) {
        t.set_content_arrangement(ContentArrangement::Dynamic);
        t.set_width(u16::try_from(w).unwrap_or(u16::MAX));
    }
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    for i in left..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!("{t}\n")
}
