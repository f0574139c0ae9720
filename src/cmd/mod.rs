//! The commands: one file per subcommand, from parsed arguments to output and exit code.
//!
//! Invariant: this is the only layer that knows clap's types (`cli/`), prints status lines, reads the
//! terminal and chooses exit codes. Everything below returns values and errors.
/// Set by `perfgate bench memory` on the perfgate processes it measures: the file each writes its peak
/// resident set size to (bytes, decimal) as it exits.
pub const PEAK_RSS_FILE_ENV: &str = "PERFGATE_PEAK_RSS_FILE";

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::bpf::ProbeMode;
use crate::cli::{Cli, Command, GateArgs, MetricArg, ProbesArg, RuleArg, RunArgs, SelectArgs};
use crate::gate::baseline::GateOverrides;
use crate::gate::model::{Metric, Rule};
use crate::plan::Selection;
use crate::report::escape::{cut_long, terminal};
use crate::run::RunAs;
use crate::session::runs::Observer;
use crate::session::{RunOptions, Target, TraceOptions};

mod baseline;
mod bench;
mod check;
mod compare;
mod completions;
mod hook;
mod man;
mod merge;
mod record;
mod replay;
mod report;
mod suite;

/// The process exit codes (also in `--help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Ok = 0,
    /// A regression was found.
    Regression = 1,
    /// perfgate could not do the job (bad input, no permission, the benchmark failed).
    Error = 2,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<Exit> {
    match cli.command {
        Command::Record(a) => record::run(a),
        Command::Report(a) => report::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Baseline(a) => baseline::run(a),
        Command::Check(a) => check::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Hook(a) => hook::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(a),
        Command::Bench(a) => bench::run(&a),
    }
}

/// Whether the error is a closed stdout (`| head`), which is not an error.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes a table or summary to stdout. A reader that went away (`perfgate check … | head -3`) or
/// another write error must not change what the command does or its exit code (`print!` would panic):
/// a closed pipe is ignored like in the views, any other error is a warning.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("perfgate: warning: writing to stdout: {e}");
        }
    }
}

/// An error as one line: the context chain joined, control characters escaped, and cut in the middle
/// past 1 KiB (a parser's message may quote a value of a hostile file whole; the file's name comes
/// first and the reason last, and both stay).
pub fn one_line(e: &anyhow::Error) -> String {
    cut_long(&terminal(&format!("{e:#}").replace('\n', " "))).into_owned()
}

/// How a table for stdout (or stderr, when a report took stdout) is drawn: as wide as `$COLUMNS` or the
/// terminal, coloured when that stream is a terminal and `NO_COLOR` is unset (<https://no-color.org>).
pub fn table_style(on_stderr: bool) -> crate::report::check_table::TableStyle {
    let tty = if on_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    crate::report::check_table::TableStyle {
        width: terminal_width(on_stderr),
        color: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        ..Default::default()
    }
}

/// Columns to fit a table in: `$COLUMNS` when set (so a pipe can ask for a width too), else the
/// terminal's; `None` for a pipe or file without `$COLUMNS`.
pub fn terminal_width(on_stderr: bool) -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n >= 20)
    {
        return Some(n);
    }
    let size = if on_stderr {
        terminal_size::terminal_size_of(std::io::stderr())
    } else {
        terminal_size::terminal_size_of(std::io::stdout())
    };
    size.map(|(w, _)| usize::from(w.0))
}

/// A status line on stderr, so stdout carries the benchmark's output and the tables only.
pub fn status(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[2mperfgate: {msg}\x1b[0m");
    } else {
        eprintln!("perfgate: {msg}");
    }
}

/// A path for a status line.
pub fn shown(p: &Path) -> String {
    terminal(&p.display().to_string())
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
pub fn progress(total: u64, done: u64, template: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_position(done);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Shows repeated runs as a progress bar and their notes as status lines.
pub struct RunProgress {
    bar: indicatif::ProgressBar,
}

impl RunProgress {
    /// A bar for `total` runs.
    pub fn new(total: usize) -> RunProgress {
        RunProgress {
            bar: progress(
                total as u64,
                0,
                "perfgate: run {pos}/{len} {wide_bar} {elapsed}",
            ),
        }
    }
}

impl Observer for RunProgress {
    fn run_done(&mut self, done: usize, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
    }

    fn calls_lost(&mut self, run: usize, calls: u64) {
        self.bar.suspend(|| {
            status(&format!(
                "run {run}: {} could not be measured (see perfgate record --verbose)",
                crate::report::units::plural(calls, "call")
            ))
        });
    }

    fn more_runs(&mut self, inconclusive: usize, runs: usize, more: usize) {
        self.bar.suspend(|| {
            status(&format!(
                "{} inconclusive after {runs} runs: {more} more runs",
                crate::report::units::plural(inconclusive, "function")
            ))
        });
    }
}

impl Drop for RunProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The selection given on the command line.
pub fn selection(s: &SelectArgs) -> Selection {
    Selection {
        libs: s.libs.clone(),
        functions: s.functions.clone(),
        no_functions: s.no_functions.clone(),
        startup: s.startup,
        no_placement: s.no_placement,
        too_hot: Vec::new(),
    }
}

/// The gate settings given on the command line, as overrides of the baseline's.
pub fn overrides(g: &GateArgs) -> GateOverrides {
    GateOverrides {
        alpha: g.alpha,
        threshold: g.threshold,
        confidence: g.confidence,
        min_share: g.min_share,
        metrics: g
            .metric
            .as_ref()
            .map(|v| v.iter().map(|&m| metric(m)).collect()),
        quantile_threshold: g.quantile_threshold,
        gate_calls: g.gate_calls.then_some(true),
        relative: g.relative.then_some(true),
        normalise: g.absolute.then_some(false),
        rule: g.rule.map(|r| match r {
            RuleArg::Sequential => Rule::Sequential,
            RuleArg::Legacy => Rule::Legacy,
        }),
        ..GateOverrides::default()
    }
}

/// A `--metric` value as the gate's metric.
fn metric(m: MetricArg) -> Metric {
    use crate::gate::model::{Statistic, TimeKind};
    let (statistic, time) = match m {
        MetricArg::MeanSelf => (Statistic::Mean, TimeKind::SelfTime),
        MetricArg::MeanInclusive => (Statistic::Mean, TimeKind::Inclusive),
        MetricArg::P50Inclusive => (Statistic::P50, TimeKind::Inclusive),
        MetricArg::P90Inclusive => (Statistic::P90, TimeKind::Inclusive),
        MetricArg::P99Inclusive => (Statistic::P99, TimeKind::Inclusive),
        MetricArg::P50Self => (Statistic::P50, TimeKind::SelfTime),
        MetricArg::P90Self => (Statistic::P90, TimeKind::SelfTime),
        MetricArg::P99Self => (Statistic::P99, TimeKind::SelfTime),
        MetricArg::TotalSelf => (Statistic::Total, TimeKind::SelfTime),
        MetricArg::TotalInclusive => (Statistic::Total, TimeKind::Inclusive),
    };
    Metric { statistic, time }
}

/// Run settings from the command line.
pub fn run_options(r: &RunArgs, events: bool, buffer_bytes: u32) -> Result<RunOptions> {
    let timeout = match r.timeout {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && s <= 31_536_000.0 => {
            Some(Duration::from_secs_f64(s))
        }
        Some(s) => bail!("--timeout {s:e}: must be a positive number of seconds, at most a year"),
    };
    Ok(RunOptions {
        trace: TraceOptions {
            events,
            ringbuf_bytes: buffer_bytes,
            probes: match (r.probes, r.no_session) {
                (Some(ProbesArg::Session), _) => Some(ProbeMode::Session),
                (Some(ProbesArg::Multi), _) | (None, true) => Some(ProbeMode::Multi),
                (Some(ProbesArg::Classic), _) => Some(ProbeMode::Classic),
                (None, false) => None,
            },
            timeout,
            probe_cost: None,
            count_only: false,
            bpf_writes: true,
        },
        run_as: RunAs::from_env(r.run_as_root)?,
        stdout: crate::run::Stdout::Inherit,
        follow: !r.no_follow,
    })
}

/// Measures the probe's own cost once for this command (not per run), so every run's figures can be
/// compensated; a calibration that fails is a warning, never an error (the figures are then raw).
pub fn calibrate(opts: &mut RunOptions) -> Result<()> {
    crate::bpf::check_privileges()?;
    match crate::session::calibrate::calibrate(&opts.trace) {
        Ok(c) => opts.trace.probe_cost = Some(c),
        Err(e) => status(&format!(
            "warning: probe cost not calibrated, figures are raw: {}",
            one_line(&e)
        )),
    }
    Ok(())
}

/// Surveys the target with this overhead budget and plans it again without the functions too hot for
/// their probe (see `session::survey`); says what it found.
pub fn surveyed(target: &Target, opts: &RunOptions, budget: f64) -> Result<Target> {
    use crate::session::survey::{survey, SurveySettings};
    status(&format!(
        "surveying {} to choose the probe set (budget: probes add at most {} of the untraced time)",
        crate::report::units::plural(target.plan.functions.len(), "function"),
        crate::report::cells::percent(budget)
    ));
    let s = SurveySettings {
        budget,
        ..SurveySettings::default()
    };
    // The survey's two runs are extra: their output must not mix with the recorded run's.
    let mut opts = opts.clone();
    if matches!(opts.stdout, crate::run::Stdout::Inherit) {
        opts.stdout = crate::run::Stdout::Stderr;
    }
    let r = survey(target, &opts, &s)?;
    let ratio = r.total.as_secs_f64() / r.untraced.as_secs_f64().max(1e-9);
    status(&format!(
        "survey: {} of {} too hot for their probe, left to their callers (their time is in the callers' \
         self time); untraced run {}, survey {} ({ratio:.1}×), {} ({} re-attaching)",
        r.too_hot.len(),
        target.plan.functions.len(),
        crate::report::units::duration(r.untraced.as_nanos() as f64),
        crate::report::units::duration(r.total.as_nanos() as f64),
        crate::report::units::plural(r.relinks, "relink"),
        crate::report::units::duration(r.relinking.as_nanos() as f64)
    ));
    let mut sel = target.selection.clone();
    sel.too_hot = r.too_hot;
    Target::for_run(&target.argv, &sel, opts.follow)
}

/// Writes a report to `path`, or to stdout for `-`. A reader of stdout that went away is ignored:
/// as an error it would end `check` with the success of a closed pipe (exit 0) whatever the verdict.
pub fn write_report(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        return match out.write_all(bytes).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        };
    }
    crate::files::write_atomic(path, bytes)
}

/// Where a view writes: stdout, or a file that appears under its name only when the view is complete.
pub struct Output {
    stdout: Option<std::io::StdoutLock<'static>>,
    file: Option<FileOutput>,
}

struct FileOutput {
    writer: std::io::BufWriter<std::fs::File>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl Output {
    /// Stdout for `None` or `-`, else a new file beside `path`, renamed over it by [`Output::finish`].
    pub fn open(path: Option<&Path>) -> Result<Output> {
        match path {
            Some(p) if p.as_os_str() != "-" => {
                let (f, tmp) = crate::files::create_beside(p)?;
                Ok(Output {
                    stdout: None,
                    file: Some(FileOutput {
                        writer: std::io::BufWriter::new(f),
                        tmp,
                        path: p.to_path_buf(),
                    }),
                })
            }
            _ => Ok(Output {
                stdout: Some(std::io::stdout().lock()),
                file: None,
            }),
        }
    }

    /// The writer.
    pub fn writer(&mut self) -> &mut dyn std::io::Write {
        if let Some(f) = &mut self.file {
            return &mut f.writer;
        }
        // `open` sets one of the two; stdout keeps this total without a panic.
        self.stdout.get_or_insert_with(|| std::io::stdout().lock())
    }

    /// Flushes, and for a file renames it into place; returns the path written, if a file.
    pub fn finish(mut self) -> Result<Option<std::path::PathBuf>> {
        use anyhow::Context;
        use std::io::Write;
        if let Some(mut s) = self.stdout.take() {
            s.flush()?;
        }
        let Some(f) = self.file.take() else {
            return Ok(None);
        };
        let FileOutput { writer, tmp, path } = f;
        let done = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_data())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done.with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Some(path))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // An output abandoned by an error leaves no temporary file behind.
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(&f.tmp);
        }
    }
}
